"""The service as a real process (`python -m service serve`): a SIGKILL mid-upload leaves a file that the next start
removes (and says so), and a SIGTERM with a long clip in flight is bounded: new uploads get 503, the running analysis
is stopped and its client told 503, the process exits and the upload spool is empty."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from service.spool import GUARD_NAME, LOCK_NAME
from tests.server import wait_for

ROOT = Path(__file__).resolve().parents[2]


def uploads_in(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file() and p.name not in (LOCK_NAME, GUARD_NAME)]


class ServiceProcess:
    def __init__(self, spool: Path, log: Path, **env):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
        environ.update({"EMOTION_SPOOL_DIR": str(spool), "EMOTION_CLIP_WORKERS": "1", "HF_HUB_OFFLINE": "1",
                        **{f"EMOTION_{k.upper()}": str(v) for k, v in env.items()}})
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--no-live", "--port",
                                             str(self.port)], cwd=ROOT, env=environ, stdout=out, stderr=out)
        wait_for(self.ready, timeout=120, interval=0.2)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the service exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(self.base + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        text = httpx.get(self.base + "/metrics", timeout=10).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def long_clip(tmp_path) -> Path:
    """40 s of the astronaut (MPEG-4 part 2: quick to write), analysed at 25 fps below: many seconds of work, far
    more than the 2 s grace the test gives it."""
    from tests.clips import astronaut_bgr, pan_zoom_frames, write_clip

    return write_clip(tmp_path / "long.mp4", pan_zoom_frames(astronaut_bgr(), (320, 240), 25, 40), 25, codec="mpeg4")


def test_sigkill_mid_upload_leaves_nothing_after_a_restart_and_sigterm_is_bounded(tmp_path, long_clip):
    spool, log = tmp_path / "spool", tmp_path / "service.log"
    service = ServiceProcess(spool, log, shutdown_grace_s=2, sample_fps=25)
    try:
        assert spool.stat().st_mode & 0o777 == 0o700
        # An upload half sent: its file is in the spool when the service is killed.
        sock = socket.create_connection(("127.0.0.1", service.port))
        head = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="private.mp4"\r\n'
                b"Content-Type: video/mp4\r\n\r\n")
        sock.sendall(b"POST /v1/clips HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=b0undary"
                     b"\r\nContent-Length: 900000\r\n\r\n" + head + os.urandom(300_000))
        wait_for(lambda: uploads_in(spool) and uploads_in(spool)[0].stat().st_size > 0)
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(30)
        sock.close()
        assert len(uploads_in(spool)) == 1  # what a crash leaves behind
    finally:
        service.stop()

    service = ServiceProcess(spool, log, shutdown_grace_s=2, sample_fps=25)
    try:
        assert uploads_in(spool) == []
        assert "removed 1 leftover upload(s)" in log.read_text()

        # A long clip in flight, then SIGTERM.
        answers: dict = {}

        def post_long_clip():
            with open(long_clip, "rb") as f:
                answers["long"] = httpx.post(service.base + "/v1/clips", files={"file": ("long.mp4", f, "video/mp4")},
                                             timeout=120)

        poster = threading.Thread(target=post_long_clip)
        poster.start()
        wait_for(lambda: service.metric("emotion_clip_workers_busy") == 1, timeout=60)
        service.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "new uploads refused" in log.read_text())
        # Within the grace period: the server still answers, and refuses new work.
        late = httpx.post(service.base + "/v1/clips", files={"file": ("late.mp4", b"x" * 1000, "video/mp4")},
                          timeout=60)
        poster.join(60)
        exit_code = service.process.wait(60)
    finally:
        service.stop()
    assert late.status_code == 503 and "shutting down" in late.json()["detail"], late.text
    long = answers["long"]
    assert long.status_code == 503 and "shutting down" in long.json()["detail"], long.text
    assert exit_code in (0, -signal.SIGTERM)
    assert uploads_in(spool) == []
    assert "stopping 1 clip analyses still running" in log.read_text()
