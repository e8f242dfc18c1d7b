"""How the service runs under uvicorn: malformed requests answered with the API's JSON error, their warnings
rate-limited per client address, and a bounded shutdown on SIGTERM.

uvicorn's own answer to a request it cannot parse is a plain-text 400 followed by an immediate close, which resets
the connection while a client is still sending (a 20 MB header block: the client sees a reset, not an answer), and
it logs one warning per such request, before any token check, so anyone could fill the log. Here:

- request line and headers over `max_header_kb` -> 431 with {"detail": ...}; any other malformed request -> 400;
  after the answer the server stops writing but keeps reading and discarding (up to LINGER_BYTES, LINGER_S) so the
  client can finish sending and read it, as nginx's lingering close does; so does every answer that closes the
  connection while the client is still sending its body (an upload refused 413 or 429 from its header, cut 408);
- at most one warning per client address every `bad_request_log_s` (the ones in between counted in the next), and
  no warning ever quotes what the client sent (its headers may carry a token);
- connections are bounded below the descriptor limit (`max_connections`, at most a fifth of RLIMIT_NOFILE), and per
  client address (`max_connections_per_client`: one more from that address is answered 503 and closed before it is
  read, so one host's flood leaves room for everyone else's health checks); at the limit, the connection idle longest (no request in progress: between requests, or still sending its first request
  line and headers) is closed to make room, so a flood of idle or slow connections cannot keep /healthz out; only
  when every connection is in the middle of a request is the newcomer answered 503 at once. A connection that has
  not sent a whole request head within `header_timeout_s` is closed (slow bodies are cut by the upload route,
  service/api/uploads.py).

SIGTERM (or Ctrl-C): new uploads get 503 at once, queued clips are cancelled, running analyses get
`shutdown_grace_s` to finish and are then stopped (their requests answered 503), then uvicorn's own shutdown closes
the connections within CLOSE_S and the lifespan clears the upload spool. A second signal skips the grace.
"""

from __future__ import annotations

import array
import fcntl
import itertools
import json
import logging
import math
import resource
import signal
import termios
import threading
import time
from collections import Counter, OrderedDict
from types import FrameType

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.config import Settings

log = logging.getLogger(__name__)

CLOSE_S = 2  # after the drain, open requests and websockets get this long before uvicorn cancels them
LINGER_S = 2.0  # how long a connection answered early (431/400, or 408/413/429 mid-body) reads what its client sends
LINGER_BYTES = 64 * 1024 * 1024  # and how much of it, at most
INVALID_REQUEST = "Invalid HTTP request received."  # uvicorn's own warning, replaced by BadRequestLog's


class BadRequestLog:
    """Warnings about malformed requests: at most one per client address every interval_s; the requests in
    between are counted in the next warning. Remembers at most max_addresses (least recently seen forgotten)."""

    def __init__(self, interval_s: float, max_addresses: int = 4096, clock=time.monotonic):
        self.interval_s, self.max_addresses, self.clock = interval_s, max_addresses, clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # address -> (last warned, suppressed)
        self._lock = threading.Lock()
        self.total = 0

    def warn(self, address: str, reason: str) -> bool:
        """Log `reason` (never the request's own bytes) for `address` unless it was warned about recently; True if
        a warning was written."""
        now = self.clock()
        with self._lock:
            self.total += 1
            last, suppressed = self._seen.pop(address, (None, 0))
            if last is not None and now - last < self.interval_s:
                self._seen[address] = (last, suppressed + 1)
                return False
            self._seen[address] = (now, 0)
            while len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)
        more = f" ({suppressed} more from this address not logged)" if suppressed else ""
        log.warning("malformed request from %s: %s%s", address, reason, more)
        return True


class _WithoutInvalidRequestWarning(logging.LoggerAdapter):
    """uvicorn's logger minus its per-request 'Invalid HTTP request received.' (JsonErrorProtocol logs instead)."""

    @property
    def level(self) -> int:  # uvicorn reads logger.level
        return self.logger.level

    def warning(self, msg, *args, **kwargs):
        if msg != INVALID_REQUEST:
            self.logger.warning(msg, *args, **kwargs)


class _LingeringTransport:
    """A connection's transport whose close(), while the client is still sending its request body (an upload
    answered 408, 413 or 429 before its end), ends our side and reads on for LINGER_S, as _answer_error does: closed
    at once, the kernel would answer the client's next bytes with a reset, and the client would lose the answer it
    had not read yet. Everything else is the transport's own."""

    def __init__(self, transport, protocol: "JsonErrorProtocol"):
        self._transport, self._protocol = transport, protocol

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def close(self) -> None:
        protocol = self._protocol
        if (protocol._lingering or protocol._shutting_down or self._transport.is_closing()
                or protocol.conn.their_state is not h11.SEND_BODY):
            self._transport.close()
        else:
            self.linger()

    def linger(self) -> None:
        """The answer is complete: end our side, read on and drop what comes for LINGER_S, then close (at once
        where the transport cannot end one side)."""
        protocol, transport = self._protocol, self._transport
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        protocol._lingering = 1  # data_received drops what still comes
        protocol.flow.resume_reading()  # it must be read, else the client blocks, then is reset
        protocol.loop.call_later(LINGER_S, transport.close)


class JsonErrorProtocol(H11Protocol):
    """uvicorn's h11 protocol, answering malformed requests as the API answers errors (see the module docstring).
    Use the class that json_error_protocol(settings) makes: it carries the log limiter."""

    bad_requests = BadRequestLog(60.0)
    max_connections: int | None = None
    max_connections_per_client: int | None = None
    header_timeout_s: float | None = None
    per_client: Counter[str] | None = None  # open connections by client address (each server's class has its own)
    by_activity: OrderedDict | None = None  # open connections, least recently active first (likewise)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logger = _WithoutInvalidRequestWarning(self.logger, {})
        self._lingering = 0  # bytes discarded after an error answer; > 0 once lingering
        self._address: str | None = None  # counted in per_client while set
        self._header_timer = None  # closes a connection with no whole request head after header_timeout_s
        self._shutting_down = False  # the server's shutdown closes at once, without lingering

    def shutdown(self) -> None:
        self._shutting_down = True
        super().shutdown()

    def connection_made(self, transport) -> None:
        super().connection_made(_LingeringTransport(transport, self))
        if self.by_activity is not None:
            self.by_activity[self] = None
        if self.per_client is not None:
            self._address = self.client[0] if self.client else "unknown"
            self.per_client[self._address] += 1
            if self.per_client[self._address] > (self.max_connections_per_client or math.inf):
                self._refuse_connection("this address has too many open connections; retry in a second")
                return
        if self.header_timeout_s is not None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._close_if_no_request_yet)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self._make_room()

    def _uncount(self) -> None:
        if self.by_activity is not None:
            self.by_activity.pop(self, None)
        if self._address is not None:
            self.per_client[self._address] -= 1
            if not self.per_client[self._address]:
                del self.per_client[self._address]
            self._address = None

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc) -> None:
        self._uncount()
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event) -> None:
        # The websocket protocol takes the connection over (and its connection_lost). No HTTP cycle ever starts on
        # it, so the header timer must go too: it would close a listening client's stream after header_timeout_s.
        self._uncount()
        self._cancel_header_timer()
        if isinstance(self.transport, _LingeringTransport):  # the websocket gets the plain transport: no lingering
            self.transport = self.transport._transport
        super().handle_websocket_upgrade(event)

    def _idle(self) -> bool:
        """No request in progress, and nothing sent that the server has not read yet (a request that has arrived
        but waits for the event loop, e.g. a health check during a flood, is not idle)."""
        if not (self.cycle is None or self.cycle.response_complete) or self.transport.is_closing():
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        unread = array.array("i", [0])
        try:
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, unread)
        except OSError:
            return True
        return unread[0] == 0

    def _make_room(self) -> None:
        """Over max_connections: close the connection idle longest, or refuse this one if none is idle."""
        # The first few in activity order: those in the middle of a request (at most max_uploads_in_progress
        # uploads, and short requests) are passed over; looking no further keeps a flood's cost per connection flat.
        for candidate in itertools.islice(self.by_activity or (), 64):
            if candidate is not self and candidate._idle():
                candidate.transport.abort()  # its descriptor goes now, unflushed
                self.by_activity.pop(candidate, None)
                return
        self._refuse_connection("the server has too many open connections; retry in a second")

    def _refuse_connection(self, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                             b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.close()

    def _close_if_no_request_yet(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        if self.by_activity is not None and self in self.by_activity:
            self.by_activity.move_to_end(self)
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when h11 refuses the request."""
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and len(self.conn.trailing_data[0]) > limit:
            self._refuse_oversized(limit)
        else:
            self._answer_error(400, "Bad Request", "malformed HTTP request (request line or headers)")

    def _refuse_oversized(self, limit: int) -> None:
        self._answer_error(431, "Request Header Fields Too Large",
                           f"request line and headers are over the limit of {limit // 1024} KiB")

    def _answer_error(self, code: int, phrase: str, detail: str) -> None:
        address = self.client[0] if self.client else "unknown"
        self.bad_requests.warn(address, f"{detail} (answered {code})")
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(f"HTTP/1.1 {code} {phrase}\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        self.transport.linger()  # read on, so that a client still sending is not reset before it reads this

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and self.conn.their_state is h11.IDLE:
            # h11 checks its limit only on a head that is still incomplete: one arriving whole in a single read
            # (up to 64 KiB) would pass. A head is whatever comes before the first blank line.
            pending = self.conn.trailing_data[0] + data
            if len(pending) > limit and b"\r\n\r\n" not in pending[:limit + 4]:
                self._refuse_oversized(limit)
                return
        super().data_received(data)


def connection_limit(settings: Settings) -> int:
    """max_connections, capped at a fifth of the process's descriptor limit (a flood may hold up to four times the
    limit for a moment, see uvicorn_options; the rest: spool files, models, logs)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(settings.max_connections, soft // 5) if soft != resource.RLIM_INFINITY else settings.max_connections


def json_error_protocol(settings: Settings) -> type[JsonErrorProtocol]:
    """The protocol class for uvicorn's `http=` option, with its own warning limiter and connection bounds from the
    settings."""
    return type("JsonErrorProtocol", (JsonErrorProtocol,), {
        "bad_requests": BadRequestLog(settings.bad_request_log_s), "max_connections": connection_limit(settings),
        "max_connections_per_client": settings.max_connections_per_client, "per_client": Counter(),
        "by_activity": OrderedDict(),
        "header_timeout_s": settings.header_timeout_s})


def uvicorn_options(settings: Settings) -> dict:
    """uvicorn.Config options that the settings decide (the tests' server uses them too)."""
    # A listen backlog of twice the connection limit (a small one drops a health check's SYN in a flood: a 1-s
    # retry): asyncio accepts up to a backlog's worth of connections before any of them is seen, and those closed
    # to make room go a loop turn later, so descriptors stay under four times the limit (the descriptor limit).
    return {"http": json_error_protocol(settings), "h11_max_incomplete_event_size": settings.max_header_kb * 1024,
            "backlog": max(16, min(2048, 2 * connection_limit(settings))),
            "ws_ping_interval": settings.ws_ping_interval_s, "ws_ping_timeout": settings.ws_ping_timeout_s,
            "timeout_graceful_shutdown": CLOSE_S}


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT drains the clip runtime (app.state.services.clips) for up to
    grace_s before the usual shutdown; a second signal goes straight to it."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_s: float):
        super().__init__(config)
        self.app, self.grace_s = app, grace_s
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self.should_exit or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self.draining = True
        log.warning("shutting down: new uploads refused; running analyses get %.1f s", self.grace_s)
        threading.Thread(target=self._drain_then_exit, args=(sig, frame), name="drain", daemon=True).start()

    def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        started = time.monotonic()
        services = getattr(self.app.state, "services", None)
        if services is not None:  # None: the signal came before the lifespan started
            services.clips.drain(self.grace_s)
        log.info("clip runtime drained in %.1f s", time.monotonic() - started)
        super().handle_exit(sig, frame)


def serve(app: FastAPI, settings: Settings, log_level: str = "warning") -> None:
    """Run the app on settings.host:port until SIGTERM/SIGINT, with the bounded shutdown above."""
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                            **uvicorn_options(settings))
    DrainingServer(config, app, settings.shutdown_grace_s).run()
