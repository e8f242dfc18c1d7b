"""The service as its own process (`python -m service serve`) on a free loopback port, for what only a real process
shows: signals (SIGKILL, SIGTERM, SIGSTOP), restarts, its log. Used by bench/faults.py and tests/api/test_shutdown.py.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1):
    """Poll until predicate() is truthy and return its value; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def never_reading_websocket(base: str, token: str | None = None) -> socket.socket:
    """A websocket client of /v1/stream that completes the handshake and then never reads, with a tiny receive
    buffer, so the server's writes to it back up quickly."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    query = f"?token={token}" if token else ""
    sock.sendall((f"GET /v1/stream{query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status = sock.recv(1024).split(b"\r\n")[0]
    if b"101" not in status:
        sock.close()
        raise ConnectionError(f"websocket handshake refused: {status.decode(errors='replace')}")
    return sock


class ServiceProcess:
    """`settings`: EMOTION_* variables without the prefix (spool_dir="/x" -> EMOTION_SPOOL_DIR=/x); `args`: more
    command-line arguments (--source ...; default --no-live). Its output goes to `log` (appended)."""

    def __init__(self, log: Path, args: list[str] | None = None, token: str | None = None,
                 startup_timeout: float = 120.0, **settings):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log, self.token = log, token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        environ = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
        environ["HF_HUB_OFFLINE"] = "1"
        environ.update({f"EMOTION_{k.upper()}": str(v) for k, v in settings.items()})
        if token:
            environ["EMOTION_TOKEN"] = token
        command = [sys.executable, "-m", "service", "serve", "--port", str(self.port), *(args or ["--no-live"])]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=out, stderr=out)
        wait_until(self.ready, timeout=startup_timeout, interval=0.2)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the service exited ({self.process.returncode}): {self.log_text()[-2000:]}")
        try:
            return httpx.get(self.base + "/healthz", headers=self.headers, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str) -> float:
        """The sum of every sample of `name` (with labels, if given: 'emotion_uploads_total{outcome="done"}')."""
        text = httpx.get(self.base + "/metrics", headers=self.headers, timeout=10).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        """Kill it if it still runs (the end of a case, whatever happened)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
