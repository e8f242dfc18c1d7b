"""The service as a real process (`python -m service serve`): a SIGKILL mid-upload leaves a file that the next start
removes (and says so), and a SIGTERM with a long clip in flight is bounded: new uploads get 503, the running analysis
is stopped and its client told 503, the process exits and the upload spool is empty."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import httpx
import pytest

from bench.service_process import ServiceProcess
from service.spool import GUARD_NAME, LOCK_NAME
from tests.server import wait_for

def uploads_in(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file() and p.name not in (LOCK_NAME, GUARD_NAME)]


def start(spool: Path, log: Path) -> ServiceProcess:
    return ServiceProcess(log, spool_dir=spool, clip_workers=1, shutdown_grace_s=2, sample_fps=25)


@pytest.fixture
def long_clip(tmp_path) -> Path:
    """40 s of the astronaut (MPEG-4 part 2: quick to write), analysed at 25 fps below: many seconds of work, far
    more than the 2 s grace the test gives it."""
    from tests.clips import astronaut_bgr, pan_zoom_frames, write_clip

    return write_clip(tmp_path / "long.mp4", pan_zoom_frames(astronaut_bgr(), (320, 240), 25, 40), 25, codec="mpeg4")


def test_sigkill_mid_upload_leaves_nothing_after_a_restart_and_sigterm_is_bounded(tmp_path, long_clip):
    spool, log = tmp_path / "spool", tmp_path / "service.log"
    service = start(spool, log)
    try:
        assert spool.stat().st_mode & 0o777 == 0o700
        # An upload half sent: its file is in the spool when the service is killed.
        sock = socket.create_connection(("127.0.0.1", service.port))
        head = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="private.mp4"\r\n'
                b"Content-Type: video/mp4\r\n\r\n")
        sock.sendall(b"POST /v1/clips HTTP/1.1\r\nHost: [::1]\r\nContent-Type: multipart/form-data; boundary=b0undary"
                     b"\r\nContent-Length: 900000\r\n\r\n" + head + os.urandom(300_000))
        wait_for(lambda: uploads_in(spool) and uploads_in(spool)[0].stat().st_size > 0)
        service.signal(signal.SIGKILL)
        service.process.wait(30)
        sock.close()
        assert len(uploads_in(spool)) == 1  # what a crash leaves behind
    finally:
        service.stop()

    service = start(spool, log)
    try:
        assert uploads_in(spool) == []
        assert "removed 1 leftover upload(s)" in service.log_text()

        # A long clip in flight, then SIGTERM.
        answers: dict = {}

        def post_long_clip():
            with open(long_clip, "rb") as f:
                answers["long"] = httpx.post(service.base + "/v1/clips", files={"file": ("long.mp4", f, "video/mp4")},
                                             timeout=120)

        poster = threading.Thread(target=post_long_clip)
        poster.start()
        wait_for(lambda: service.metric("emotion_clip_workers_busy") == 1, timeout=60)
        service.signal(signal.SIGTERM)
        wait_for(lambda: "new uploads refused" in service.log_text())
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
