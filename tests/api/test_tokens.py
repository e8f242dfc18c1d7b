"""The bearer token compares as bytes (UTF-8) in constant time (issue 34): any token, right or wrong (non-ASCII,
empty, huge), gets its answer, 200 or 401 on HTTP and a policy close on the websocket, never a 500 or a traceback."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import httpx
import pytest
import websockets

from service.api import create_app
from service.config import Settings
from tests.server import running_server

TOKEN = "tök€n-ключ"  # not ASCII, not even Latin-1
WRONG = ["wrong", "tök€n-ключ!", "tök€n", "tök€n-ключ".encode().decode("latin-1"), "ä", "€" * 1000, "x" * 12000,
         "", " "]


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server():
    settings = Settings(_env_file=None, token=TOKEN)
    with running_server(create_app(settings, live=False)) as base:
        yield base


@pytest.fixture
def server_log(server):
    """Warnings and errors of uvicorn (where an exception in the app is logged) and of the service."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn", "service", "")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


def bearer(token: str) -> dict[str, bytes]:
    # As bytes: UTF-8 on the wire. An empty or blank token leaves "Bearer" (h11 allows no trailing blank).
    return {"Authorization": (b"Bearer " + token.encode()).strip()}


def test_the_right_token_in_utf_8_is_accepted(server):
    assert httpx.get(server + "/v1/models", headers=bearer(TOKEN)).status_code == 200
    assert httpx.get(server + "/", params={"token": TOKEN}).status_code == 200  # ?token= percent-encodes UTF-8


@pytest.mark.parametrize("token", WRONG)
def test_a_wrong_token_answers_401_without_a_traceback(server, server_log, token):
    for path in ("/v1/models", "/metrics", "/v1/clips/x", "/v1/view/frames/cam"):
        response = httpx.get(server + path, headers=bearer(token))
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    for path in ("/", "/docs", "/openapi.json"):
        assert httpx.get(server + path, params={"token": token}).status_code == 401
    response = httpx.post(server + "/v1/clips", headers=bearer(token), files={"file": ("a.mp4", b"x", "video/mp4")})
    assert response.status_code == 401
    assert server_log == []


def test_raw_non_utf_8_bytes_answer_401(server, server_log):
    for raw in (b"Bearer \xff\xfe\xe4", b"Bearer " + "tök€n-ключ".encode("cp1252", "replace"), b"Bearer\t\x80"):
        assert httpx.get(server + "/v1/models", headers={"Authorization": raw}).status_code == 401
    assert server_log == []


async def opens(url: str, **kwargs) -> bool:
    try:
        async with websockets.connect(url, open_timeout=20, **kwargs) as ws:
            await asyncio.wait_for(ws.recv(), 20)
            return True
    except websockets.exceptions.InvalidStatus as refused:
        assert refused.response.status_code == 403  # closed before accepting: the policy close of a handshake
        return False


def test_the_websocket_takes_the_right_token_and_closes_on_any_other(server, server_log):
    url = server.replace("http://", "ws://") + "/v1/stream"
    assert asyncio.run(opens(f"{url}?token={quote(TOKEN)}"))
    # (a websocket's request line is limited to 8 KiB by the websockets library: huge tokens go in the header)
    for token in [t for t in WRONG if len(quote(t)) < 6000] + ["\x00", "x" * 6000]:
        assert not asyncio.run(opens(f"{url}?token={quote(token)}")), token
    # websockets writes header values as Latin-1, so a str made of the bytes arrives as those bytes
    header = {"Authorization": f"Bearer {TOKEN}".encode().decode("latin-1")}
    assert asyncio.run(opens(url, additional_headers=header))
    for raw in (b"Bearer " + "tök€n".encode(), b"Bearer \xff\xfe", b"Bearer " + "€".encode() * 2000, b"Bearer"):
        assert not asyncio.run(opens(url, additional_headers={"Authorization": raw.decode("latin-1")}))
    assert server_log == []
