"""Requests the HTTP parser refuses (oversized or malformed headers) get the API's JSON error, also when the client
is still sending megabytes; the warnings about them are rate-limited per client address and never quote what the
client sent (its headers may carry the token)."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from service.api import create_app
from service.api.server import BadRequestLog, uvicorn_options
from service.config import Settings
from tests.server import running_server

SECRET = "tok3n-in-a-bad-request"


@pytest.fixture(scope="module")
def server():
    settings = Settings(_env_file=None, token="s3cret", bad_request_log_s=3600)
    with running_server(create_app(settings, live=False), **uvicorn_options(settings)) as base:
        yield base


def raw_request(base: str, data: bytes) -> tuple[int, dict]:
    """Send `data` (all of it, as a client that writes its whole request before reading does) and parse the
    answer: status and JSON body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


def oversized(header_bytes: int) -> bytes:
    return (f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nX-Big: ".encode()
            + b"a" * header_bytes + b"\r\n\r\n")


@pytest.mark.parametrize("size", [1024 * 1024, 20 * 1024 * 1024], ids=["1MB", "20MB"])
def test_oversized_headers_get_a_json_431(server, size):
    status, body = raw_request(server, oversized(size))
    assert status == 431 and body == {"detail": "request line and headers are over the limit of 16 KiB"}


def test_malformed_headers_get_a_json_400(server):
    status, body = raw_request(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n")
    assert status == 400 and "malformed" in body["detail"]


def test_bad_request_warnings_are_rate_limited_and_quote_nothing_the_client_sent(server, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            assert raw_request(server, oversized(40 * 1024))[0] == 431
    warnings = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(warnings) <= 1  # the module's earlier bad requests from this address may have used it up
    assert SECRET not in caplog.text and "Invalid HTTP request received" not in caplog.text


def test_the_limiter_counts_what_it_did_not_log(caplog):
    now = [0.0]
    limiter = BadRequestLog(60, max_addresses=2, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="service.api.server"):
        assert limiter.warn("10.0.0.1", "x") and not limiter.warn("10.0.0.1", "x")
        assert limiter.warn("10.0.0.2", "x")  # another address has its own allowance
        now[0] = 61
        assert limiter.warn("10.0.0.1", "x")
    assert "1 more from this address not logged" in caplog.records[-1].getMessage()
    assert limiter.total == 4 and len(limiter._seen) == 2
