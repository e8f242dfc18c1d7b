"""Web pages kept out unless invited. Any page open in a browser on the robot or a developer's machine can send
requests to 127.0.0.1; two rules, on every route, keep such pages from reading the stream and frames or posting:

- Host (DNS rebinding): a page whose own name its author makes resolve to 127.0.0.1 reaches the service as its own
  origin, and its browser says that name in the Host header. A request's Host must be an IP address (no DNS answer
  makes a browser send one), `localhost`, or one of the allowed names (the `allowed_hosts` setting and the address
  the server binds); else 400. The port is not compared: port mappings and proxies change it.
- Origin (cross-site forms, other pages' scripts): a browser names the page a request comes from in Origin, and it
  lets any page open a websocket or submit a form anywhere. Websocket upgrades and every method but GET, HEAD and
  OPTIONS are refused (403) when Origin is neither the service's own (scheme://Host) nor an allowed one
  (`allowed_origins`). Reads need no Origin check: without CORS headers a browser shows another page nothing of the
  answer (what rebinding would get round is the Host rule's).

A request without Origin (robots' clients, curl, the Python client) or without Host (HTTP/1.0) is no browser's and
passes. Written here rather than taken from Starlette: TrustedHostMiddleware knows only lists of names, so it would
refuse the IP address a robot calls us by unless every address were listed, and answers in plain text without naming
the setting; CORSMiddleware only adds headers for allowed pages and refuses no request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.websockets import WebSocket

from service.config import HOST_SYNTAX

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_ALLOWED_NAMES = frozenset({"localhost"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(rf"(?P<host>{HOST_SYNTAX})(?::(?P<port>[0-9]{{1,5}}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<netloc>[^/?#]*)")


def parse_host(value: str) -> tuple[str, int | None] | None:
    """(host, port) of a Host header or an origin's host[:port]: the host in lower case without a final dot, an IPv6
    address in brackets; None when the value is not one."""
    match = _HOST.fullmatch(value.lower())
    if match is None:
        return None
    host, port = match["host"], int(match["port"]) if match["port"] else None
    if (host.startswith("[") and not _is_ip_address(host)) or (port is not None and port > 65535):
        return None
    return host.removesuffix("."), port


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
        return True
    except ValueError:
        return False


def host_allowed(host_header: str | None, allowed: Sequence[str]) -> bool:
    """True for no Host, an IP address, localhost, or a name that an `allowed` pattern matches (a name, '*.domain'
    for every subdomain of domain, '*' for any)."""
    if host_header is None:
        return True
    parsed = parse_host(host_header)
    if parsed is None:
        return False
    name = parsed[0]
    if name in ALWAYS_ALLOWED_NAMES or _is_ip_address(name):
        return True
    for pattern in (p.lower().removesuffix(".") for p in allowed):
        if pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an Origin header or an allowed origin, the port explicit; None for anything else
    ("null", a path, another scheme)."""
    match = _ORIGIN.fullmatch(value.lower())
    if match is None or (netloc := parse_host(match["netloc"])) is None:
        return None
    scheme = match["scheme"]
    return scheme, netloc[0], netloc[1] or DEFAULT_PORTS[scheme]


def origin_allowed(origin: str, host_header: str | None, allowed: Sequence[str]) -> bool:
    """True when the page `origin` is the service's own (the host and port the request names in Host, whatever the
    scheme: behind a TLS proxy the page is https), one of `allowed`, or `allowed` has '*'."""
    if "*" in allowed:
        return True
    page = parse_origin(origin)
    if page is None:
        return False
    own = parse_host(host_header) if host_header is not None else None
    if own is not None and (own[0], own[1] or DEFAULT_PORTS[page[0]]) == page[1:]:
        return True
    return page in {parse_origin(entry) for entry in allowed}


def _quoted(value: str) -> str:
    return repr(value if len(value) <= 100 else value[:100] + "...")


class BrowserGuard:
    """Plain ASGI middleware for HTTP and websockets: the Host and Origin rules above. `refused(rule)` is told of
    each refusal ("host" or "origin"), for the metrics."""

    def __init__(self, app, allowed_hosts: Sequence[str], allowed_origins: Sequence[str],
                 refused: Callable[[str], None] = lambda rule: None):
        self.app, self.allowed_hosts, self.allowed_origins = app, list(allowed_hosts), list(allowed_origins)
        self.refused = refused

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        host, origin = headers.get("host"), headers.get("origin")
        if not host_allowed(host, self.allowed_hosts):
            self.refused("host")
            return await _refuse(scope, receive, send, 400, "host not allowed",
                                 f"Host {_quoted(host)} is not a name of this service: list it in "
                                 "EMOTION_ALLOWED_HOSTS (only IP addresses and localhost pass without it; other names "
                                 "could be a DNS rebinding page)")
        changes = scope["type"] == "websocket" or scope["method"] not in READ_METHODS
        if changes and origin is not None and not origin_allowed(origin, host, self.allowed_origins):
            self.refused("origin")
            what = "open the websocket" if scope["type"] == "websocket" else f"send {scope['method'][:20]} requests"
            return await _refuse(scope, receive, send, 403, "origin not allowed",
                                 f"a page from {_quoted(origin)} may not {what}: only the service's own pages and "
                                 "those listed in EMOTION_ALLOWED_ORIGINS may")
        await self.app(scope, receive, send)


async def _refuse(scope, receive, send, status: int, reason: str, detail: str) -> None:
    """The API's JSON error; for a websocket as its handshake's answer where the server can send one (uvicorn
    can), else a policy close before accepting (the client sees 403)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await WebSocket(scope, receive, send).close(WS_1008_POLICY_VIOLATION, reason=reason)
        return
    await JSONResponse({"detail": detail}, status)(scope, receive, send)
