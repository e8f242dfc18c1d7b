"""A small client for the emotion-perception service: REST calls through httpx, the live event stream through
websockets. Answers stay plain JSON (dicts), so this package never needs the server's code or pydantic.

Every failure is one of four exceptions, each with a message that can be shown to a person as it is:
ClientError (the server answered 4xx/5xx), ServiceUnreachable (nothing answered at the URL), RequestTimeout (it
answered too slowly), ClipFileError (the local clip cannot be read; raised before any request)."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from client.gaps import SequenceGaps

DEFAULT_URL = "http://127.0.0.1:8765"  # the service's default port (8000 is the local LLM server's)
EVENT_TYPES = ("emotion", "track_new", "track_lost", "heartbeat")  # Contract 2


class EmotionClientError(Exception):
    """Base class of everything this client raises; str(error) is the whole story."""


class ClientError(EmotionClientError):
    """The server answered with an error status. `status` is the HTTP (or handshake) status, `detail` the server's
    own explanation. A clip job that failed in the background has status None (its GET succeeded)."""

    def __init__(self, message: str, status: int | None, detail: str, url: str):
        super().__init__(message)
        self.status, self.detail, self.url = status, detail, url


class ServiceUnreachable(EmotionClientError):
    """Nothing answered at the service URL (connection refused, unknown host, connection dropped)."""

    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


class RequestTimeout(EmotionClientError):
    """The service did not answer, or a clip analysis did not finish, in time. `job_id` is set when a background
    job is still running on the server: it can be fetched later with EmotionClient.job()."""

    def __init__(self, message: str, url: str, job_id: str | None = None):
        super().__init__(message)
        self.url, self.job_id = url, job_id


class ClipFileError(EmotionClientError):
    """The local clip is missing or unreadable."""


def _detail(response: httpx.Response) -> str:
    """The server's explanation: FastAPI's {"detail": ...} (a string, or a list of validation errors), else text."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase  # e.g. a proxy's HTML page
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # request validation errors: "query.source: field required; ..."
        return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}" for e in detail
                         if isinstance(e, dict)) or json.dumps(detail)
    return json.dumps(body)[:500]


def _unauthorized_message(token: str | None) -> str:
    if token is None:
        return "the service requires a bearer token and none was given"
    return "the service refused the bearer token (wrong token)"


class EmotionClient:
    """Synchronous REST client, plus `stream()`, an async iterator over the live events.

    url: the service's base URL (http or https; a path prefix, e.g. behind a reverse proxy, is kept).
    token: sent as `Authorization: Bearer TOKEN` on every request and on the websocket handshake.
    timeout: seconds to wait for an ordinary request (state, models, health); clip analysis has its own.

    Use it as a context manager, or call close(), to release its connection pool."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"service URL {url!r} must look like http://HOST:PORT")
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.token = token or None
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=self._timeout(timeout))
        self.stream_gaps = SequenceGaps()  # events lost by the latest stream(): .missed, .gaps (client/gaps.py)

    @staticmethod
    def _timeout(read_s: float) -> httpx.Timeout:
        # Connecting is quick or hopeless; reading may legitimately take as long as a clip's analysis.
        return httpx.Timeout(read_s, connect=min(read_s, 10.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmotionClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmotionClient(url={self.url!r}, token={'***' if self.token else None})"

    # REST

    def _request(self, method: str, path: str, *, accept: tuple[int, ...] = (), **kwargs) -> httpx.Response:
        """Send a request; return the response if it is 2xx or its status is in `accept`, else raise."""
        url = path if path.startswith("http") else self.url + path
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(f"cannot reach the service at {self.url} ({_reason(exc)})", url) from None
        except httpx.TimeoutException:
            raise RequestTimeout(f"no answer from {url} in time (timeout {self._describe_timeout(kwargs)})",
                                 url) from None
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"the connection to {self.url} failed during {method} {path}: {_reason(exc)}",
                                     url) from None
        if response.is_success or response.status_code in accept:
            if "json" not in response.headers.get("content-type", ""):
                raise EmotionClientError(f"{url} answered with {response.headers.get('content-type') or 'no'} "
                                         f"content, not JSON: is {self.url} the emotion service?")
            return response
        detail = _detail(response)
        if response.status_code == 401:
            message = f"401 Unauthorized from {method} {url}: {_unauthorized_message(self.token)}"
        else:
            message = f"{response.status_code} {response.reason_phrase} from {method} {url}: {detail}"
        raise ClientError(message, response.status_code, detail, url)

    def _describe_timeout(self, kwargs: dict) -> str:
        timeout = kwargs.get("timeout")
        return f"{timeout.read if isinstance(timeout, httpx.Timeout) else self.timeout:g} s"

    def health(self) -> dict:
        """Liveness: {"status": "ok"} when the process answers."""
        return self._request("GET", "/healthz").json()

    def ready(self) -> dict:
        """Readiness: {"ready": bool, "model": name, "sources": {name: alive}}. A not-ready service (503) is
        answered, not raised: `ready` is False."""
        return self._request("GET", "/readyz", accept=(503,)).json()

    def models(self) -> dict:
        """The model the service runs: {"active": name, "providers": [...], "models": [bundle facts]}."""
        return self._request("GET", "/v1/models").json()

    def state(self, source: str | None = None) -> dict:
        """What the service sees now: each source's health and its tracks with their current labels. With
        `source`, only that one (ClientError 404 names the sources that exist)."""
        return self._request("GET", "/v1/state", params={"source": source} if source else None).json()

    def job(self, job_id: str) -> dict:
        """A clip job: {"id", "status": queued|running|done|failed|cancelled, "error", "report", ...}."""
        return self._request("GET", f"/v1/clips/{job_id}").json()

    def analyze(self, path: str | Path, background: bool = False, poll_interval: float = 0.5,
                timeout: float = 600.0) -> dict:
        """Upload a clip and return its report (the server's ClipReport as a dict: tracks, events, ...).

        The server analyses short clips while the request waits, and answers large ones (or any, with
        background=True) with 202 and a job to poll; both end here with the report. `timeout` bounds the whole
        analysis (upload, queue and processing). A job that fails raises ClientError with the server's reason;
        one still running at the deadline raises RequestTimeout carrying its job_id."""
        path = Path(path)
        if not path.exists():
            raise ClipFileError(f"clip {path} does not exist")
        if not path.is_file():
            raise ClipFileError(f"clip {path} is not a file")
        deadline = time.monotonic() + timeout
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            clip = path.open("rb")
        except OSError as exc:
            raise ClipFileError(f"cannot read clip {path}: {exc.strerror or exc}") from None
        with clip:  # httpx streams the open file: a large clip is never held in memory
            response = self._request("POST", "/v1/clips", params={"background": "true"} if background else None,
                                     files={"file": (path.name, clip, content_type)},
                                     timeout=self._timeout(timeout))
        if response.status_code != 202:
            return response.json()
        job = response.json()
        location = response.headers.get("location") or f"/v1/clips/{job['id']}"
        return self._wait_for_job(location, job["id"], deadline, poll_interval)

    def _wait_for_job(self, location: str, job_id: str, deadline: float, poll_interval: float) -> dict:
        # A relative Location is resolved against the base URL, path prefix included (httpx merges them).
        url = self.url + location if location.startswith("/") else location
        while True:
            job = self._request("GET", location).json()
            if job["status"] == "done":
                return job["report"]
            if job["status"] in ("failed", "cancelled"):  # cancelled: the service stopped before analysing it
                error = job.get("error") or "no reason given"
                raise ClientError(f"the service could not analyse {job.get('filename', 'the clip')}: {error}",
                                  None, error, url)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout(f"clip job {job_id} is still {job['status']} on the server after the "
                                     f"timeout; fetch it later with job({job_id!r})", url, job_id)
            time.sleep(min(poll_interval, remaining))

    # Live events

    def stream_url(self, source: str | None = None) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode({"source": source}) if source else ""
        return urlunsplit((scheme, parts.netloc, parts.path + "/v1/stream", query, ""))

    async def stream(self, source: str | None = None, types: Iterable[str] | None = None,
                     reconnects: int = 0, reconnect_delay: float = 1.0) -> AsyncIterator[dict]:
        """Yield live events (Contract 2 dicts: emotion, track_new, track_lost, heartbeat) as they arrive.

        source: only that source's events (heartbeats always come). types: only these event types.
        reconnects: how many times in a row to retry when the service cannot be reached or the connection drops
        (0, the default: raise at once); waits reconnect_delay, doubling up to 30 s; the count starts again once
        an event arrives. Events sent while disconnected are lost: the service does not replay, but every event's
        `seq` shows it: `self.stream_gaps.missed` counts the events lost (dropped because this client read too
        slowly, or sent while it was disconnected) and each gap is logged as a warning. Refusals (wrong token,
        unknown source: ClientError 401 / 404) are never retried; a 5xx handshake answer is."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        wanted = set(types) if types is not None else None
        url = self.stream_url(source)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        failures, delay = 0, reconnect_delay
        self.stream_gaps = gaps = SequenceGaps(follow=source)
        while True:
            try:
                async with connect(url, additional_headers=headers, open_timeout=self.timeout,
                                   max_size=2**22) as websocket:
                    async for message in websocket:
                        failures, delay = 0, reconnect_delay
                        event = json.loads(message)
                        gaps.observe(event)
                        if wanted is None or event.get("type") in wanted:
                            yield event
                    problem = ServiceUnreachable(f"the service at {self.url} closed the event stream", url)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status < 500:  # a refusal: retrying would be refused again
                    raise await self._stream_refusal(status, source, url) from None
                # e.g. a reverse proxy's 502 while the service restarts: worth another try
                problem = ClientError(f"the event stream at {url} answered HTTP {status}", status,
                                      f"HTTP {status}", url)
            except (OSError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError) as exc:
                problem = _stream_problem(exc, self.url, url)
            if failures >= reconnects:
                raise problem
            failures += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _stream_refusal(self, status: int, source: str | None, url: str) -> ClientError:
        """A refused handshake carries no reason (the server closes before accepting), so ask the REST side
        which it was: the token (401) or the source (404)."""
        if status == 403:
            try:
                await asyncio.to_thread(self.state, source)
            except ClientError as exc:
                if exc.status in (401, 404):
                    reason = _unauthorized_message(self.token) if exc.status == 401 else exc.detail
                    return ClientError(f"the service refused the event stream at {url}: {reason}", exc.status,
                                       exc.detail, url)
            except EmotionClientError:
                pass
        return ClientError(f"the service refused the event stream at {url} (HTTP {status})", status,
                           f"HTTP {status}", url)


def _reason(exc: Exception) -> str:
    """The innermost cause in words ("Connection refused" rather than a chain of wrappers)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # "Connection refused", whichever library wrapped it
    return str(exc) or type(exc).__name__


def _stream_problem(exc: Exception, base: str, url: str) -> EmotionClientError:
    from websockets.exceptions import ConnectionClosed

    if isinstance(exc, asyncio.TimeoutError):
        return RequestTimeout(f"the service at {base} did not open the event stream in time", url)
    if isinstance(exc, ConnectionClosed):
        return ServiceUnreachable(f"the event stream from {base} was cut ({exc})", url)
    if isinstance(exc, OSError):
        return ServiceUnreachable(f"cannot reach the service at {base} ({_reason(exc)})", url)
    return ServiceUnreachable(f"the service at {base} did not accept a websocket: {exc}", url)
