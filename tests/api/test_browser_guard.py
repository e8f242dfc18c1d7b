"""Web pages kept out unless invited (issue 34): a `Host` that names the service by an unknown name (DNS rebinding)
is refused on every route, the live view's frames and the websocket included; websocket upgrades and requests that
change something (every method but GET, HEAD and OPTIONS) are refused when their `Origin` is not the service's own
page or an allowed one; requests without `Origin` (robots' clients, curl, the Python client) work as before. On a real
server without a token (the default); the same in a real browser: tests/browser/test_cross_origin.py."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import websockets
from pydantic import ValidationError

from service.api import create_app
from service.api.browser_guard import BrowserGuard, host_allowed, origin_allowed
from service.config import Settings
from tests.server import running_server, wait_for

EVIL = "http://evil.example"


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/stream"


async def first_message(url: str, **kwargs) -> str:
    async with websockets.connect(url, open_timeout=20, **kwargs) as ws:
        return await asyncio.wait_for(ws.recv(), 20)


def refused_status(url: str, **kwargs) -> int:
    """The HTTP status a websocket handshake was refused with."""
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(first_message(url, **kwargs))
    return refused.value.response.status_code


@pytest.fixture(scope="module")
def open_server():
    """Uploads only, no token (the default), an allow-list of one extra name and one extra origin."""
    settings = Settings(_env_file=None, heartbeat_s=0.25, allowed_hosts=["robot.example", "*.robots.example"],
                        allowed_origins=["http://dashboard.example:3000"])
    with running_server(create_app(settings, live=False)) as base:
        yield base


# ---- Host: DNS rebinding --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/v1/state", "/v1/view/frames/face", "/metrics", "/docs", "/static/view/view.js",
                                  "/no/such/path"])
def test_an_unknown_host_name_is_refused_on_every_route(live_server, path):
    # A rebinding page on http://evil.example:PORT/ reaches 127.0.0.1 under its own name, which is what Host says.
    port = live_server.rsplit(":", 1)[1]
    response = httpx.get(live_server + path, headers={"Host": f"evil.example:{port}"}, timeout=30)
    assert response.status_code == 400
    assert "evil.example" in response.json()["detail"] and "EMOTION_ALLOWED_HOSTS" in response.json()["detail"]


def test_the_live_views_frames_need_a_known_host(live_server):
    wait_for(lambda: httpx.get(live_server + "/v1/view/frames/face", timeout=30).status_code == 200, timeout=60)
    assert httpx.get(live_server + "/v1/view/frames/face", headers={"Host": "rebound.example"}).status_code == 400


def test_the_websocket_needs_a_known_host(live_server):
    port = int(live_server.rsplit(":", 1)[1])
    # ws://rebound.example:PORT/ as a rebinding page opens it: the connection goes to 127.0.0.1, Host names the page.
    assert refused_status(f"ws://rebound.example:{port}/v1/stream", host="127.0.0.1", port=port) == 400
    assert asyncio.run(first_message(ws_url(live_server)))  # 127.0.0.1:PORT


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST", "localhost.", "[::1]:8765",
                                  "10.0.0.7:8765", "192.168.1.20", "[fe80::1]", "robot.example:8765",
                                  "a.robots.example"])
def test_loopback_names_ip_addresses_and_allowed_names_pass(open_server, host):
    # No DNS answer can make a browser send an IP address as Host: those are never a rebinding.
    assert httpx.get(open_server + "/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "robots.example", "robot.example.evil", "localhost.evil",
                                  "127.0.0.1.nip.io", "a:b:c", "[not-ipv6]", "name:99999"])
def test_other_and_malformed_host_names_are_refused(open_server, host):
    assert httpx.get(open_server + "/healthz", headers={"Host": host}).status_code == 400


def test_requests_without_a_host_header_pass(open_server):
    # HTTP/1.0 without Host: never a browser (a browser always sends one).
    port = int(open_server.rsplit(":", 1)[1])

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    assert asyncio.run(get()).startswith(b"HTTP/1.1 200")


# ---- Origin: cross-site forms and other sites' scripts --------------------------------------------------------------

def test_a_cross_site_form_cannot_post_a_clip(live_server, astronaut_clip):
    files = {"file": ("astronaut.mp4", astronaut_clip.read_bytes(), "video/mp4")}
    response = httpx.post(live_server + "/v1/clips", files=files, headers={"Origin": EVIL}, timeout=120)
    assert response.status_code == 403
    assert EVIL in response.json()["detail"] and "EMOTION_ALLOWED_ORIGINS" in response.json()["detail"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "MADEUP"])
@pytest.mark.parametrize("path", ["/v1/clips", "/v1/clips/abc", "/v1/state", "/no/such/path"])
def test_every_state_changing_method_from_another_origin_is_refused(open_server, method, path):
    for origin in (EVIL, "null", "http://127.0.0.1:1", "http://localhost:" + open_server.rsplit(":", 1)[1]):
        response = httpx.request(method, open_server + path, headers={"Origin": origin}, content=b"x")
        assert response.status_code == 403, (origin, response.text)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_from_another_origin_pass_the_guard(open_server, method):
    # The browser shows another origin nothing of the answer (no CORS headers); what a read returns is the route's.
    response = httpx.request(method, open_server + "/healthz", headers={"Origin": EVIL})
    assert response.status_code == httpx.request(method, open_server + "/healthz").status_code != 403


def test_the_services_own_page_and_clients_without_origin_may_post(open_server, astronaut_clip):
    files = {"file": ("astronaut.mp4", astronaut_clip.read_bytes(), "video/mp4")}
    # (the service's own page, at http://127.0.0.1:PORT, has that origin)
    for headers in ({}, {"Origin": open_server}, {"Origin": "http://dashboard.example:3000"}):
        response = httpx.post(open_server + "/v1/clips", files=files, headers=headers, timeout=120)
        assert response.status_code == 200, (headers, response.text)
    # Under another name the page is another origin, allowed as a host, its own origin again.
    response = httpx.post(open_server + "/v1/clips", files=files, timeout=120,
                          headers={"Host": "robot.example:8080", "Origin": "http://robot.example:8080"})
    assert response.status_code == 200


def test_a_websocket_from_another_origin_is_refused(live_server, open_server):
    for base in (live_server, open_server):
        for origin in (EVIL, "null", "http://localhost:" + base.rsplit(":", 1)[1]):
            assert refused_status(ws_url(base), origin=origin) == 403


def test_a_websocket_from_the_services_own_page_an_allowed_origin_or_no_page_opens(open_server):
    for kwargs in ({}, {"origin": open_server}, {"origin": "http://dashboard.example:3000"}):
        assert "heartbeat" in asyncio.run(first_message(ws_url(open_server), **kwargs))


def test_any_origin_when_asked_for():
    settings = Settings(_env_file=None, allowed_origins=["*"])
    with running_server(create_app(settings, live=False)) as base:
        response = httpx.post(base + "/v1/clips", headers={"Origin": EVIL}, files={"file": ("a.mp4", b"", "video/mp4")})
        assert response.status_code == 400  # the route's own answer to an empty clip: past the guard


def metric(base: str, sample: str) -> float:
    lines = httpx.get(base + "/metrics").text.splitlines()
    line = next((line for line in lines if line.startswith(sample + " ")), None)
    return float(line.split()[-1]) if line else 0.0


def test_the_refusals_are_counted_in_metrics(open_server):
    before = {rule: metric(open_server, f'emotion_http_refused_total{{rule="{rule}"}}') for rule in ("host", "origin")}
    httpx.post(open_server + "/v1/clips", headers={"Origin": EVIL})
    httpx.get(open_server + "/healthz", headers={"Host": "evil.example"})
    assert refused_status(ws_url(open_server), origin=EVIL) == 403
    assert metric(open_server, 'emotion_http_refused_total{rule="origin"}') == before["origin"] + 2
    assert metric(open_server, 'emotion_http_refused_total{rule="host"}') == before["host"] + 1
    text = httpx.get(open_server + "/metrics").text
    assert 'emotion_http_requests_total{method="POST",route="other",status="403"}' in text
    assert 'emotion_http_requests_total{method="GET",route="other",status="400"}' in text


# ---- the rules, and their settings ----------------------------------------------------------------------------------

def test_host_rules():
    assert host_allowed("localhost:8765", []) and host_allowed("127.0.0.1", []) and host_allowed("[::1]:1", [])
    assert host_allowed(None, [])
    assert not host_allowed("evil.example", []) and not host_allowed("", [])
    assert host_allowed("any.name", ["*"]) and host_allowed("Robot.Example", ["robot.example"])
    assert host_allowed("a.b.robots.example", ["*.robots.example"]) and not host_allowed("robots.example",
                                                                                          ["*.robots.example"])


def test_origin_rules():
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", [])
    assert origin_allowed("http://ROBOT.example", "robot.example:80", [])
    assert origin_allowed("https://robot.example", "robot.example", [])  # behind a TLS proxy
    assert origin_allowed("http://[::1]:8765", "[::1]:8765", [])
    assert not origin_allowed("http://localhost:8765", "127.0.0.1:8765", [])
    assert not origin_allowed("http://127.0.0.1:8766", "127.0.0.1:8765", [])
    assert not origin_allowed("https://robot.example", "robot.example:80", [])
    assert not origin_allowed("null", "127.0.0.1:8765", []) and not origin_allowed("", "127.0.0.1:8765", [])
    assert not origin_allowed("http://127.0.0.1:8765/path", "127.0.0.1:8765", [])
    assert not origin_allowed("http://127.0.0.1:8765", None, [])
    assert origin_allowed("http://dashboard.example:3000", "127.0.0.1:8765", ["http://dashboard.example:3000"])
    assert origin_allowed("http://dashboard.example", "127.0.0.1:8765", ["http://Dashboard.example:80"])
    assert origin_allowed("null", "127.0.0.1:8765", ["*"])


def test_a_server_without_handshake_answers_gets_a_policy_close():
    """Where the ASGI server cannot answer a websocket handshake with a response, the refusal is a close before
    accepting (uvicorn, which can, is what the tests above run)."""
    sent, called = [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/v1/stream", "headers": [(b"host", b"127.0.0.1:8765"),
                                                                    (b"origin", EVIL.encode())]}
    asyncio.run(BrowserGuard(app, [], [])(scope, receive, send))
    assert called == [] and sent == [{"type": "websocket.close", "code": 1008, "reason": "origin not allowed"}]


@pytest.mark.parametrize("field, value, words", [
    ("allowed_hosts", ["robot.*"], "'*.example.com'"),
    ("allowed_hosts", ["a.*.example"], "'*.example.com'"),
    ("allowed_hosts", ["robot.example:8765"], "without a port"),
    ("allowed_hosts", ["http://robot.example"], "without a port"),
    ("allowed_origins", ["robot.example"], "scheme://host[:port]"),
    ("allowed_origins", ["http://robot.example/view"], "scheme://host[:port]"),
    ("allowed_origins", ["ftp://robot.example"], "scheme://host[:port]"),
])
def test_bad_allow_list_entries_are_one_clear_error(field, value, words):
    with pytest.raises(ValidationError, match=re.escape(words)):
        Settings(_env_file=None, **{field: value})


def test_the_lists_come_from_json_or_comma_separated_variables(monkeypatch):
    monkeypatch.setenv("EMOTION_ALLOWED_HOSTS", "Robot.local, *.robots.lan")
    monkeypatch.setenv("EMOTION_ALLOWED_ORIGINS", '["http://dash.local:3000"]')
    settings = Settings(_env_file=None)
    assert settings.allowed_hosts == ["robot.local", "*.robots.lan"]
    assert settings.allowed_origins == ["http://dash.local:3000"]
