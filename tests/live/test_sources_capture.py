import time

import numpy as np
import pytest

from service.errors import SourceError
from service.ingest.queues import BoundedQueue
from service.ingest.sources import SourceKind, parse_source, unique_names
from service.ingest.capture import CaptureThread, backoff_delays


def test_parse_sources(tmp_path):
    clip = tmp_path / "hall.mp4"
    clip.write_bytes(b"x")
    assert parse_source("0").kind is SourceKind.CAMERA and parse_source("0").uri == 0
    assert parse_source("/dev/video2").name == "camera2"
    stream = parse_source("rtsp://10.0.0.5:554/live?a=b", position=1)
    assert stream.kind is SourceKind.STREAM and stream.name == "stream1" and stream.uri.endswith("a=b")
    assert parse_source(str(clip)).name == "hall" and parse_source(str(clip)).kind is SourceKind.FILE
    assert parse_source(f"door={clip}").name == "door"
    assert parse_source("front=rtsp://cam/x").name == "front"
    with pytest.raises(SourceError, match="neither"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError):
        parse_source("  ")
    names = [s.name for s in unique_names([parse_source("0"), parse_source("0"), parse_source("0")])]
    assert names == ["camera0", "camera0-2", "camera0-3"]


def test_backoff_doubles_up_to_a_cap():
    delays = backoff_delays(0.5, 3.0)
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


class FakeCamera:
    """Delivers `frames` frames then fails, like an unplugged USB camera."""

    def __init__(self, frames: int, opens: bool = True):
        self.frames, self.opens = frames, opens

    def isOpened(self):
        return self.opens

    def read(self):
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        time.sleep(0.01)
        return True, np.zeros((48, 64, 3), np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_camera_unplugged_and_replugged_is_reopened_with_backoff():
    # Plugged in for 10 frames, then gone for two attempts, then back.
    script = [FakeCamera(10), FakeCamera(0, opens=False), FakeCamera(0, opens=False), FakeCamera(1000)]
    opened = []

    def opener(spec):
        opened.append(time.monotonic())
        return script.pop(0) if script else FakeCamera(0, opens=False)

    out = BoundedQueue(2)
    capture = CaptureThread(parse_source("0"), out, sample_fps=1000, clock=time.monotonic, backoff=(0.01, 0.05),
                            opener=opener)
    capture.start()
    deadline = time.monotonic() + 10
    while capture.frames_read < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    capture.stop()
    capture.join(5)
    assert capture.frames_read >= 30 and capture.reconnects == 3  # the drop-out, then two failed opens
    assert len(opened) == 4 and not capture.is_alive() and capture.status == "stopped"
    # The queue stayed bounded: old frames were dropped and counted, never queued without limit.
    assert len(out) <= 2 and out.dropped > 0 and out.put_count == capture.frames_sampled


def test_capture_samples_before_queueing():
    out = BoundedQueue(1000)
    capture = CaptureThread(parse_source("0"), out, sample_fps=20, clock=time.monotonic,
                            opener=lambda spec: FakeCamera(40))
    capture.start()
    while capture.frames_read < 40 and capture.is_alive():
        time.sleep(0.01)
    capture.stop()
    capture.join(5)
    # 40 frames about 10 ms apart: ~0.4 s, so about 8 at 20 fps are kept.
    assert 4 <= capture.frames_sampled <= 14 and len(out) == capture.frames_sampled


def test_stop_interrupts_the_backoff_wait():
    capture = CaptureThread(parse_source("0"), BoundedQueue(2), 8, time.monotonic, backoff=(30, 30),
                            opener=lambda spec: FakeCamera(0, opens=False))
    capture.start()
    time.sleep(0.1)
    started = time.monotonic()
    capture.stop()
    capture.join(5)
    assert not capture.is_alive() and time.monotonic() - started < 5
    assert "cannot open" in capture.last_error


def test_a_silent_source_ends_its_tracks():
    """Camera unplugged: no frames for a while, so the people it saw are reported gone (track_lost)."""
    from service.events import TrackEvent
    from service.state import LiveState
    from service.live.workers import FaceWorker
    from service.pipeline import FrameResult

    class OnePersonPipeline:
        has_tracks = True

        def finish(self):
            self.has_tracks = False
            return FrameResult(lifecycle=[TrackEvent(source="cam", type="track_lost", track_id=1, t=0.0,
                                                     box=(0, 0, 1, 1))])

    published, state = [], LiveState()
    state.add_source("cam", "camera")
    state.track_seen("cam", 1, (0, 0, 1, 1), 0.0, 640)
    worker = FaceWorker("cam", BoundedQueue(2), OnePersonPipeline(), BoundedQueue(4), state, published.append,
                        time.monotonic, silence_s=0.2)
    worker.start()
    deadline = time.monotonic() + 10
    while not published and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    worker.join(5)
    assert [e.type for e in published] == ["track_lost"] and state.tracks("cam")[0] == []


class GrabbingCamera(FakeCamera):
    """OpenCV's split read: grab() takes the next frame, retrieve() converts it; both counted."""

    def __init__(self, frames: int):
        super().__init__(frames)
        self.grabbed = self.retrieved = 0

    def grab(self):
        ok, _ = self.read()
        self.grabbed += ok
        return ok

    def retrieve(self):
        self.retrieved += 1
        return True, np.zeros((48, 64, 3), np.uint8)


def test_only_the_frames_the_sampler_keeps_are_converted():
    camera = GrabbingCamera(40)
    out = BoundedQueue(1000)
    capture = CaptureThread(parse_source("0"), out, sample_fps=20, clock=time.monotonic, opener=lambda spec: camera)
    capture.start()
    while capture.frames_read < 40 and capture.is_alive():
        time.sleep(0.01)
    capture.stop()
    capture.join(5)
    assert camera.grabbed == capture.frames_read == 40
    assert 0 < camera.retrieved == capture.frames_sampled == len(out) < 40
    assert all(frame.image.shape == (48, 64, 3) for frame in out.drain(1000))


def test_files_and_streams_are_decoded_by_the_configured_number_of_ffmpeg_threads(monkeypatch):
    import cv2

    from service.ingest import capture as capture_module
    from service.ingest.capture import open_capture

    opened = []
    monkeypatch.setattr(capture_module.cv2, "VideoCapture", lambda *args: opened.append(args))
    open_capture(parse_source("rtsp://cam/x"), timeout_ms=800, decode_threads=1)
    open_capture(parse_source("0"), decode_threads=3)
    (uri, backend, params), camera = opened
    assert backend == cv2.CAP_FFMPEG and params[:2] == [cv2.CAP_PROP_N_THREADS, 1] and 800 in params
    assert camera == (0,)  # a camera is opened as OpenCV chooses (no FFmpeg decoding of its own)


def test_a_broken_sampled_image_is_skipped_and_the_source_stays_open():
    class SkipsEveryOther(GrabbingCamera):
        skipped = 0
        failure = None

        def retrieve(self):
            self.retrieved += 1
            if self.retrieved % 2:
                self.skipped += 1  # as a ROS topic counts an image whose pixels do not add up
                return False, None
            return True, np.zeros((48, 64, 3), np.uint8)

    camera = SkipsEveryOther(40)
    capture = CaptureThread(parse_source("0"), BoundedQueue(1000), sample_fps=20, clock=time.monotonic,
                            opener=lambda spec: camera)
    capture.start()
    while capture.frames_read < 40 and capture.is_alive():
        time.sleep(0.01)
    capture.stop()
    capture.join(5)
    # One reopen at most: the camera's end after 40 frames (a broken image ending the read would add one each).
    assert capture.reconnects <= 1 and capture.frames_read == 40 and camera.retrieved >= 4
    assert capture.frames_skipped == camera.skipped > 0 and capture.frames_sampled == camera.retrieved - camera.skipped
