"""The clip queue: bounded (429 with Retry-After), fair (a waiting request goes before background jobs), sized to
the machine, and a request whose client goes away is cancelled: taken out of the queue or stopped mid-decoding."""

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service import analyze
from service.api import create_app
from service.clip_jobs import ClipJobs, QueueFull
from service.api.uploads import ReceivedUpload
from service.config import Settings, usable_cpus
from service.errors import ClipCancelled
from service.report import ClipReport
from tests.server import running_server, wait_for


class GatedAnalysis:
    """Stands in for analyze_clip: each call waits until `release` is set (or its job is cancelled), so a test
    decides when a worker is busy. Records which clips started, in order."""

    def __init__(self):
        self.release = threading.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.paths: list[Path] = []

    def __call__(self, path, settings, engine, detector, source=None, should_stop=None, **_):
        self.started.append(source)
        self.paths.append(Path(path))
        deadline = time.monotonic() + 60
        while not self.release.wait(0.02):
            if should_stop is not None and should_stop():
                self.cancelled.append(source)
                raise ClipCancelled(f"analysis of {source} cancelled")
            if time.monotonic() > deadline:
                raise AssertionError("the test never released the analysis")
        return ClipReport(source=source, model="fake", labels=["a", "b"], detector="haar", width=1, height=1,
                          source_fps=25, duration=0.04, frames_decoded=1, frames_sampled=1, sample_fps=8, tracks=[],
                          events=[])


@pytest.fixture
def gate(monkeypatch):
    fake = GatedAnalysis()
    monkeypatch.setattr(analyze, "analyze_clip", fake)
    yield fake
    fake.release.set()


def upload(tmp_path, name: str) -> ReceivedUpload:
    path = tmp_path / f"{name}.upload"
    path.write_bytes(b"clip")
    return ReceivedUpload(path, name, 4)


def test_the_queue_is_bounded_and_a_full_one_says_when_to_retry(gate, tmp_path):
    jobs = ClipJobs(Settings(_env_file=None, clip_workers=1, max_queued_clips=1), engine=None)
    try:
        jobs.submit(upload(tmp_path, "a"))
        wait_for(lambda: gate.started == ["a"])
        jobs.submit(upload(tmp_path, "b"))  # waits: one place in the queue
        with pytest.raises(QueueFull, match="already waiting") as refused:
            jobs.submit(upload(tmp_path, "c"))
        assert refused.value.retry_after_s >= 1
        gate.release.set()
        wait_for(lambda: gate.started == ["a", "b"] and jobs.queued == 0)
    finally:
        jobs.shutdown()


def test_a_waiting_request_goes_before_background_jobs(gate, tmp_path):
    jobs = ClipJobs(Settings(_env_file=None, clip_workers=1, max_queued_clips=4), engine=None)
    try:
        jobs.submit(upload(tmp_path, "long-background"))
        wait_for(lambda: gate.started == ["long-background"])
        futures = [jobs.submit(upload(tmp_path, "background-2"))[1],
                   jobs.submit(upload(tmp_path, "interactive"), interactive=True)[1],
                   jobs.submit(upload(tmp_path, "background-3"))[1]]
        gate.release.set()
        assert all(f.result(timeout=30).status == "done" for f in futures)
        assert gate.started == ["long-background", "interactive", "background-2", "background-3"]
    finally:
        jobs.shutdown()


def test_a_cancelled_queued_job_leaves_the_queue_and_its_upload_is_deleted(gate, tmp_path):
    jobs = ClipJobs(Settings(_env_file=None, clip_workers=1, max_queued_clips=2), engine=None)
    try:
        jobs.submit(upload(tmp_path, "a"))
        wait_for(lambda: gate.started == ["a"])
        waiting = upload(tmp_path, "b")
        job, future = jobs.submit(waiting)
        jobs.cancel(job.id)
        assert future.result(timeout=5).status == "cancelled" and jobs.queued == 0 and not waiting.path.exists()
    finally:
        jobs.shutdown()


def test_clip_workers_default_to_the_usable_cpus_and_queue_settings_are_validated():
    settings = Settings(_env_file=None)
    assert settings.clip_workers == usable_cpus() >= 1 and settings.max_queued_clips == 8
    with pytest.raises(ValidationError, match="max_queued_clips"):
        Settings(_env_file=None, max_queued_clips=-1)
    with pytest.raises(ValidationError, match="clip_workers"):
        Settings(_env_file=None, clip_workers=0)


@pytest.fixture
def gated_server(gate):
    settings = Settings(_env_file=None, clip_workers=1, max_queued_clips=0)
    with running_server(create_app(settings, live=False)) as base:
        yield base


def metric(base: str, line_start: str) -> float:
    text = httpx.get(base + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start))


def test_a_full_queue_is_429_with_retry_after(gated_server, gate):
    files = {"file": ("a.mp4", b"clip", "video/mp4")}
    first = httpx.post(gated_server + "/v1/clips", files=files, params={"background": "true"})
    assert first.status_code == 202
    wait_for(lambda: gate.started == ["a.mp4"])
    refused = httpx.post(gated_server + "/v1/clips", files={"file": ("b.mp4", b"clip", "video/mp4")})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "waiting" in refused.json()["detail"]
    assert metric(gated_server, 'emotion_uploads_total{outcome="queue_full"}') == 1


def test_a_request_whose_client_goes_away_is_cancelled(gated_server, gate):
    host, port = gated_server.removeprefix("http://").split(":")
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"gone.mp4\"\r\n"
            b"Content-Type: video/mp4\r\n\r\nclip\r\n--b0undary--\r\n")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/clips HTTP/1.1\r\nHost: [::1]\r\nContent-Type: multipart/form-data; boundary=b0undary"
                     b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        wait_for(lambda: gate.started == ["gone.mp4"])
    # The client has hung up while its clip was being analysed: the analysis is stopped, not finished for nobody.
    wait_for(lambda: metric(gated_server, 'emotion_uploads_total{outcome="cancelled"}') == 1)
    assert gate.cancelled == ["gone.mp4"] and not gate.release.is_set()
    assert not gate.paths[0].exists()


def test_a_cancelled_analysis_stops_decoding(settings, astronaut_clip):
    """The real analysis asks before each decoded frame, so a cancelled clip stops at once, not at its end."""
    from service.detect import create_detector
    from service.inference import create_engine

    asked = []

    def stop_after_five() -> bool:
        asked.append(1)
        return len(asked) > 5

    with pytest.raises(ClipCancelled, match="after 5 frames"):
        analyze.analyze_clip(astronaut_clip, settings, create_engine(settings), create_detector(settings),
                             should_stop=stop_after_five)
    assert len(asked) == 6  # of the clip's 75 frames


def test_usable_cpus_follow_a_container_cpu_quota(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # docker run --cpus 1.5
    assert usable_cpus(cpu_max) == min(2, usable_cpus(tmp_path / "none"))
    cpu_max.write_text("max 100000\n")
    assert usable_cpus(cpu_max) == usable_cpus(tmp_path / "none") >= 1


def test_an_upload_cancelled_while_it_arrives_leaves_no_file(tmp_path, monkeypatch):
    """The request task cancelled mid-body (a shutdown) is not an Exception: the partial upload must go anyway."""
    import asyncio
    import tempfile

    from service.api.uploads import receive_clip

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class CancelledMidBody:
        headers = {"content-type": "multipart/form-data; boundary=xyz"}

        def __init__(self):
            self.messages = [{"type": "http.request", "more_body": True,
                              "body": b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"'
                                      b'\r\n\r\nsome bytes'}]

        async def receive(self):
            if self.messages:
                return self.messages.pop(0)
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(receive_clip(CancelledMidBody(), "file", 1024))
    assert list(tmp_path.iterdir()) == []


def _copy(clip: Path, tmp_path: Path, name: str) -> ReceivedUpload:
    path = tmp_path / f"{name}.upload"
    path.write_bytes(clip.read_bytes())
    return ReceivedUpload(path, name, path.stat().st_size)


def test_a_request_is_not_starved_by_background_jobs_holding_every_worker(settings, astronaut_clip, tmp_path,
                                                                          monkeypatch):
    """Every worker busy with a background job that would run until released: a waiting request is analysed
    between two of their frames, in about its solo time (a generous factor: the machine is shared), and before
    any of them ends."""
    from service.inference import create_engine

    real_analysis, gate = analyze.analyze_clip, GatedAnalysis()

    def analysis(path, settings, engine, detector, source=None, should_stop=None, **kwargs):
        if source.startswith("background"):
            return gate(path, settings, engine, detector, source, should_stop)
        return real_analysis(path, settings, engine, detector, source=source, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(analyze, "analyze_clip", analysis)
    jobs = ClipJobs(settings.model_copy(update={"clip_workers": 2}), create_engine(settings))
    try:
        def request_seconds(name: str) -> float:
            started = time.perf_counter()
            job = jobs.submit(_copy(astronaut_clip, tmp_path, name), interactive=True)[1].result(timeout=120)
            assert job.status == "done" and job.report.tracks
            return time.perf_counter() - started

        request_seconds("warm-up")  # detectors and ONNX Runtime sessions made, on both workers
        request_seconds("warm-up-2")
        solo = request_seconds("solo")
        background = [jobs.submit(upload(tmp_path, f"background-{i}"))[1] for i in range(2)]
        wait_for(lambda: len(gate.started) == 2 and jobs.busy == 2)
        beside_background = request_seconds("beside-background")
        assert jobs.yields == 1 and not any(f.done() for f in background)  # it went first, on a worker they held
        assert beside_background < 3 * solo + 0.5, (solo, beside_background)
        gate.release.set()
        assert all(f.result(timeout=30).status == "done" for f in background)
    finally:
        gate.release.set()
        jobs.shutdown()


def test_retry_after_comes_from_the_running_clips_own_length_then_from_measured_clips(gate, astronaut_clip,
                                                                                      tmp_path):
    """Before any clip has been measured: the running clip's duration times the conservative clip_cost_per_video_s
    (minus what it has already run); afterwards the measured cost per video second replaces the setting."""
    import math

    from service.ingest.clip import probe_clip

    duration = probe_clip(astronaut_clip).duration
    for cost in (4.0, 40.0):
        jobs = ClipJobs(Settings(_env_file=None, clip_workers=1, max_queued_clips=0, clip_cost_per_video_s=cost),
                        engine=None)
        try:
            gate.release.clear()
            gate.started.clear()
            jobs.submit(_copy(astronaut_clip, tmp_path, "running"))
            wait_for(lambda: gate.started == ["running"])
            with pytest.raises(QueueFull) as refused:
                jobs.submit(upload(tmp_path, "refused"))
            assert duration * cost - 2 <= refused.value.retry_after_s <= math.ceil(duration * cost)
            gate.release.set()
            wait_for(lambda: jobs.busy == 0)
            # One clip measured (the stand-in analysis took a few milliseconds): its cost is now the estimate.
            gate.release.clear()
            jobs.submit(_copy(astronaut_clip, tmp_path, "second"))
            wait_for(lambda: gate.started[-1] == "second")
            with pytest.raises(QueueFull) as refused:
                jobs.submit(upload(tmp_path, "refused-again"))
            assert refused.value.retry_after_s == 1
        finally:
            gate.release.set()
            jobs.shutdown()
