import time

import numpy as np
import pytest

from tests.server import wait_for

from service.errors import SourceError
from service.ingest.queues import BoundedQueue
from service.ingest.sources import SourceKind, parse_source, unique_names
from service.ingest.capture import CaptureThread, backoff_delays
from service.ingest.frame_source import BROKEN, Grab, Skip


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
    """A FrameSource that delivers `frames` frames then fails, like an unplugged USB camera; counts its grabs and
    retrievals. `idle` grabs come back IDLE (nothing arrived) before each frame, as from a silent ROS topic."""

    def __init__(self, frames: int, opens: bool = True, idle: int = 0, shape=(48, 64, 3)):
        self.frames, self.idle, self.shape = frames, idle, shape
        self.failure = None if opens else "cannot open the fake camera"
        self.last_skip = None
        self.grabbed = self.retrieved = 0
        self._idle_left = idle

    def is_open(self):
        return self.failure is None

    def frame_rate(self):
        return 0.0

    def grab(self):
        if self._idle_left:
            self._idle_left -= 1
            time.sleep(0.01)
            return Grab.IDLE
        if self.frames <= 0:
            self.failure = "the fake camera stopped delivering frames"
            return Grab.ENDED
        self.frames -= 1
        self._idle_left = self.idle
        time.sleep(0.01)
        self.grabbed += 1
        return Grab.FRAME

    def retrieve(self):
        self.retrieved += 1
        return np.zeros(self.shape, np.uint8)

    def stamp(self):
        return None

    def waiting(self):
        return None

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


def test_only_the_frames_the_sampler_keeps_are_converted():
    camera = FakeCamera(40)
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
    class Closed:
        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return False

    monkeypatch.setattr(capture_module.cv2, "VideoCapture", lambda *args: opened.append(args) or Closed())
    open_capture(parse_source("rtsp://cam/x"), timeout_ms=800, decode_threads=1)
    open_capture(parse_source("0"), decode_threads=3)
    (uri, backend, params), camera = opened
    assert backend == cv2.CAP_FFMPEG and params[:2] == [cv2.CAP_PROP_N_THREADS, 1] and 800 in params
    assert camera == (0,)  # a camera is opened as OpenCV chooses (no FFmpeg decoding of its own)


def test_a_broken_sampled_image_is_skipped_and_the_source_stays_open():
    class SkipsEveryOther(FakeCamera):
        skipped = 0

        def retrieve(self):
            self.retrieved += 1
            if self.retrieved % 2:
                self.skipped += 1  # as a ROS topic skips an image whose pixels do not add up
                self.last_skip = Skip(BROKEN, "a frame whose pixels do not add up")
                return None
            return np.zeros((48, 64, 3), np.uint8)

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
    assert capture.counters.skipped == {BROKEN: camera.skipped}
    assert capture.counters.last_skip == "a frame whose pixels do not add up"


class ScriptedVideoCapture:
    """cv2.VideoCapture's part that OpenCvSource uses, handing out the frames given."""

    def __init__(self, frames: list[np.ndarray], declared: tuple[int, int] = (0, 0)):
        self.frames, self.declared = list(frames), declared

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return True

    def get(self, prop):
        import cv2

        return {cv2.CAP_PROP_FRAME_WIDTH: self.declared[0], cv2.CAP_PROP_FRAME_HEIGHT: self.declared[1]}.get(prop, 0)

    def grab(self):
        return bool(self.frames)

    def retrieve(self):
        return True, self.frames.pop(0)

    def release(self):
        pass


def test_frames_of_a_shape_the_detector_cannot_take_are_refused_at_the_source_and_counted():
    """Before: a 100000x1 image passed and failed in the face worker on every sampled frame (crop_around's
    warpAffine: dst.cols < SHRT_MAX)."""
    from service.ingest.frame_source import REFUSED_SIZE, FrameLimits, OpenCvSource

    good = np.zeros((48, 64, 3), np.uint8)
    frames = [np.zeros((1, 100000, 3), np.uint8), good, np.zeros((5000, 100, 3), np.uint8), good]
    source = OpenCvSource(ScriptedVideoCapture(frames), "camera 0", FrameLimits())
    out = BoundedQueue(10)
    capture = CaptureThread(parse_source("0"), out, sample_fps=1000, clock=time.monotonic, opener=lambda spec: source)
    capture.start()
    wait_for(lambda: len(out) + capture.frames_skipped >= 4, timeout=10)  # each handed on or skipped
    capture.stop()
    capture.join(5)
    assert [f.image.shape for f in out.drain(10)] == [(48, 64, 3), (48, 64, 3)]  # only the good ones go on
    assert capture.counters.skipped == {REFUSED_SIZE: 2}
    assert "a 100x5000 frame is over max_frame_side 4096" in capture.counters.last_skip
    # A stream that declares too large a frame does not open at all (nothing is decoded).
    declared = OpenCvSource(ScriptedVideoCapture([], declared=(20000, 20000)), "stream rtsp://cam/x", FrameLimits())
    assert not declared.is_open() and "20000x20000 frame is over max_frame_side" in declared.failure


def test_a_face_workers_errors_are_counted_by_kind_and_logged_once_a_minute(caplog):
    from service.live.workers import ErrorTally, FaceWorker
    from service.state import LiveState

    class FailingPipeline:
        has_tracks = False
        last_faces = []

        def process(self, t, image):
            raise ValueError("OpenCV(4.14.0) error: (-215:Assertion failed) dst.cols < SHRT_MAX")

    frames = BoundedQueue(100)
    state = LiveState()
    state.add_source("cam", "camera")
    errors = ErrorTally("face worker cam on a frame")
    worker = FaceWorker("cam", frames, FailingPipeline(), BoundedQueue(4), state, lambda e: None, time.monotonic,
                        errors=errors)
    from service.ingest.capture import CapturedFrame

    with caplog.at_level("ERROR", logger="service.live.workers"):
        worker.start()
        for seq in range(40):
            frames.put(CapturedFrame("cam", seq, float(seq), np.zeros((4, 4, 3), np.uint8)))
            time.sleep(0.002)
        wait_for(lambda: errors.total >= 40 or not len(frames), timeout=10)
        worker.stop()
        worker.join(5)
    assert errors.by_kind() == {"ValueError": errors.total} and errors.total >= 20 and worker.errors == errors.total
    assert len([r for r in caplog.records if "face worker cam" in r.getMessage()]) == 1  # not one per frame


def test_credentials_in_a_stream_url_are_never_shown(caplog, capfd):
    from service.ingest.capture import open_capture
    from service.ingest.sources import redact_uri

    url = "rtsp://admin:hunter2@127.0.0.1:1/live?token=s3cret&channel=1"
    spec = parse_source(f"door={url}")
    assert spec.shown == "rtsp://admin:***@127.0.0.1:1/live?token=***&channel=1" and "hunter2" not in repr(spec)
    assert redact_uri("http://just-a-token@cam/x") == "http://***@cam/x"
    capture = CaptureThread(spec, BoundedQueue(2), 8.0, time.monotonic, backoff=(0.05, 0.1),
                            opener=lambda s: open_capture(s, timeout_ms=300))
    with caplog.at_level("DEBUG"):
        capture.start()
        wait_for(lambda: capture.reconnects >= 1, timeout=30)
        capture.stop()
        capture.join(10)
    assert "cannot open stream rtsp://admin:***@127.0.0.1:1" in capture.last_error
    assert "hunter2" not in caplog.text and "s3cret" not in caplog.text and "hunter2" not in capture.last_error
    printed = capfd.readouterr()  # FFmpeg's and OpenCV's own messages too
    assert "hunter2" not in printed.err + printed.out


def test_sources_named_alike_get_names_nobody_has():
    """Before: `a, a, a-2` became `a, a-2, a-2`: one runner overwrote another and its threads were never stopped."""
    specs = [parse_source(f"{name}=0") for name in ("a", "a", "a-2")]
    assert [s.name for s in unique_names(specs)] == ["a", "a-3", "a-2"]
    specs = [parse_source(f"{name}=0") for name in ("a", "a-2", "a", "a")]
    assert [s.name for s in unique_names(specs)] == ["a", "a-2", "a-3", "a-4"]
