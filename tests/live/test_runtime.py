"""The live runtime's parts: restarts (a restarted face worker gets its own pipeline), emotion events (raw and
smoothed probabilities; an ended track's smoothing is forgotten), a looping file source that logs once, and the
one Engine protocol both backends follow."""

import logging
import time

import cv2
import numpy as np
import pytest

from service.emotions import EmotionStage
from service.events import TrackEvent
from service.ingest.capture import CaptureThread
from service.ingest.frame_source import FrameLimits
from service.ingest.queues import BoundedQueue
from service.ingest.sources import parse_source
from service.live.ended_tracks import EndedTracks
from service.live.workers import InferenceWorker, PendingWindow
from service.metrics import StageTimer
from service.state import LiveState
from service.windows import Window
from tests.live.test_sources_capture import FakeCamera
from tests.server import wait_for

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt", "anxiety", "helpless",
          "disappointed"]  # not 7: nothing may assume the 7 basic labels


class FakeSpec:
    name = "fake-model"
    labels = LABELS


class FakeEngine:
    spec = FakeSpec()
    labels = LABELS


def window(track_id: int, t_end: float) -> Window:
    faces = np.zeros((16, 8, 8, 3), np.uint8)
    return Window(track_id, faces, None, t_end - 2.0, t_end, (10.0, 10.0, 50.0, 50.0), tuple(range(16)))


def one_hot(index: int, p: float = 0.9) -> np.ndarray:
    probs = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    probs[index] = p
    return probs


class ScriptedEngine(FakeEngine):
    """Answers each window with the next probabilities queued in `answers`."""

    def __init__(self, answers=()):
        self.answers = list(answers)

    def predict_windows(self, items, cache=None):
        return np.stack([self.answers.pop(0) for _ in items])


@pytest.fixture
def emotions(settings):
    state = LiveState()
    state.add_source("cam", "camera")
    state.track_seen("cam", 1, (10.0, 10.0, 50.0, 50.0), 0.0, 640)
    published, latencies = [], []
    windows = BoundedQueue(8)
    engine = ScriptedEngine()
    # EMA with alpha 0.5: its smoothed probabilities are easy to state (the switch smoother has its own tests).
    stage = EmotionStage(settings.model_copy(update={"smoothing": "ema", "ema_alpha": 0.5}), engine, state)
    ended = EndedTracks(stage, windows, published.append)
    worker = InferenceWorker(stage, windows, settings.max_batch, published.append, clock=lambda: 12.5,
                             after_batch=ended.settle, observe_frame_to_event=latencies.append)

    def infer(pending: PendingWindow, probs: np.ndarray) -> None:
        engine.answers.append(probs)
        worker._infer([pending])

    return infer, stage, ended, windows, published, latencies


def test_emotion_events_carry_raw_and_smoothed_probabilities(emotions):
    infer, _, _, _, published, latencies = emotions
    infer(PendingWindow("cam", window(1, 10.0)), one_hot(3))  # happy
    infer(PendingWindow("cam", window(1, 12.0)), one_hot(4))  # sad, once: EMA still says happy
    first, second = published
    assert first.raw_probs == first.smoothed_probs == first.probs and first.label == "happy"
    assert second.raw_probs["sad"] == pytest.approx(0.9)
    assert second.smoothed_probs["sad"] == pytest.approx(0.46, abs=0.01)
    assert second.probs == second.smoothed_probs and second.confidence == second.smoothed_probs[second.label]
    assert len(second.raw_probs) == 11
    assert first.prompt_about == "scene"  # live: everyone in view
    assert latencies == [2.5, 0.5]  # the clock (12.5) minus each window's last frame time


def test_a_tracks_lost_comes_after_its_last_windows_event_and_then_its_smoothing_is_forgotten(emotions):
    infer, stage, ended, windows, published, _ = emotions
    infer(PendingWindow("cam", window(1, 10.0)), one_hot(3))
    windows.put(PendingWindow("cam", window(1, 11.0)))  # its last window, still waiting for inference
    ended.ended(TrackEvent(source="cam", type="track_lost", track_id=1, t=11.0, box=(0, 0, 1, 1)))
    ended.settle()
    assert [e.type for e in published] == ["emotion"] and ended.waiting == 1  # held back for the window to come
    assert ("cam", 1) in stage.smoother
    last = windows.get(timeout=1)
    infer(last, one_hot(3))
    ended.settle()
    assert [e.type for e in published] == ["emotion", "emotion", "track_lost"]  # the last emotion first
    assert published[1].t_end == 11.0 and ("cam", 1) not in stage.smoother and ended.waiting == 0


def test_clip_events_are_smoothed_like_live_ones(settings):
    stage = EmotionStage(settings.model_copy(update={"smoothing": "ema", "ema_alpha": 0.5}),
                         ScriptedEngine([one_hot(3), one_hot(4)]))
    happy, sad = stage.classify([("clip.mp4", window(1, 2.0)), ("clip.mp4", window(1, 3.0))], None, StageTimer())
    assert happy.raw_probs == happy.smoothed_probs and sad.raw_probs["sad"] == pytest.approx(0.9)
    assert sad.smoothed_probs["sad"] == pytest.approx(0.46, abs=0.01) and sad.label == "happy"
    assert happy.prompt_about == "face"  # a clip: its own face


def test_a_restarted_face_worker_gets_its_own_pipeline_and_its_tracks_end(settings):
    from service.inference import create_engine
    from service.live.runtime import LiveRuntime

    runtime = LiveRuntime(settings, create_engine(settings), ["door=0"],
                          opener=lambda spec: FakeCamera(0, opens=False))
    published = []
    runtime.bus.add_sink(published.append)
    runtime.start()
    try:
        runner = runtime.runners["door"]
        runtime.state.track_seen("door", 7, (1.0, 2.0, 30.0, 30.0), runtime.clock(), 640)
        old = runner.worker
        runtime.supervisor.restart_face_worker(runner)
        new = runner.worker
        assert new is not old and new.is_alive() and old.stopping
        # Not shared with a stuck predecessor: detector and tracker are not thread-safe.
        assert new.pipeline is not old.pipeline
        assert new.pipeline.detector is not old.pipeline.detector
        assert new.pipeline.tracker is not old.pipeline.tracker
        # Published by the inference worker once no window of it waits (here: at once, on its next idle turn).
        wait_for(lambda: any(e.type == "track_lost" for e in published), timeout=10)
        assert [(e.type, e.track_id) for e in published if e.type == "track_lost"] == [("track_lost", 7)]
        assert runtime.state.tracks("door")[0] == []
    finally:
        runtime.stop()


def test_a_looping_file_logs_opened_once_and_a_recovered_source_forgets_its_error(caplog, tmp_path):
    clip = tmp_path / "loop.mp4"
    clip.write_bytes(b"x")
    script = [FakeCamera(3), FakeCamera(0, opens=False)] + [FakeCamera(3) for _ in range(50)]
    capture = CaptureThread(parse_source(str(clip)), BoundedQueue(2), sample_fps=1000, clock=time.monotonic,
                            backoff=(0.01, 0.02), opener=lambda spec: script.pop(0))
    with caplog.at_level(logging.INFO, logger="service.ingest.capture"):
        capture.start()
        try:
            wait_for(lambda: capture.frames_read >= 12, timeout=20)
        finally:
            capture.stop()
            capture.join(5)
    opened = [r for r in caplog.records if "opened" in r.getMessage() and r.levelno == logging.INFO]
    # Once at start, once back after the failed open; the loops after that are not news.
    assert len(opened) == 2 and capture.reconnects == 1 and capture.last_error is None


def test_one_engine_protocol_covers_both_backends(settings, tmp_path):
    from service.config import Settings
    from service.inference import Engine, create_engine
    from tests.test_export_checkpoint import tiny_checkpoint

    checkpoint, _ = tiny_checkpoint(tmp_path, "baseline")
    torch_engine = create_engine(Settings(_env_file=None, backend="pytorch", checkpoint=checkpoint))
    for engine in (create_engine(settings), torch_engine):
        assert isinstance(engine, Engine), type(engine).__name__
        assert engine.labels == engine.spec.labels and engine.providers and engine.bundle.directory


def test_the_knobs_reach_their_components(settings, tmp_path):
    """Once constants in the code, now settings: each one is what the component it tunes uses."""
    from service.clip_jobs import ClipJobs
    from service.config import Settings
    from service.inference import create_engine
    from service.live.runtime import LiveRuntime
    from service.metrics import StageTimer

    tuned = Settings(_env_file=None, track_silence_s=1.5, clip_jobs_kept=7, frame_cache_frames=99,
                     smoother_max_tracks=5, capture_timeout_ms=1234, decode_threads=2, max_frame_side=2000,
                     max_frame_pixels=3_000_000, max_frame_aspect=3, track_lost_s=0.5, sample_fps=10)
    runtime = LiveRuntime(tuned, create_engine(settings), ["0"])
    assert runtime.opener.keywords == {"timeout_ms": 1234, "decode_threads": 2,
                                       "limits": FrameLimits(2000, 3_000_000, 3.0)}
    capture = runtime.new_capture(runtime.specs[0], BoundedQueue(2))
    assert capture.silence_s == 1.234 and capture.counters is runtime.new_capture(runtime.specs[0], None).counters
    assert runtime.inference.frame_cache.capacity == 99 and runtime.emotions.smoother.max_tracks == 5
    worker = runtime.new_face_worker(runtime.specs[0], BoundedQueue(2), StageTimer())
    assert worker.silence_s == 1.5
    assert worker.pipeline.tracker.inner.max_missed == 5  # 0.5 s at 10 sampled frames a second
    jobs = ClipJobs(tuned, engine=None)
    assert jobs.keep == 7
    jobs.shutdown()


def test_a_replaced_face_workers_late_result_is_dropped(settings):
    """A worker stuck inside its pipeline and replaced by the watchdog must not, when the pipeline finally returns,
    publish its windows and events or bring its ended tracks back into the live state (nothing would end them)."""
    import threading

    from service.ingest.capture import CapturedFrame
    from service.live.workers import FaceWorker
    from service.pipeline import FrameResult

    entered, release = threading.Event(), threading.Event()

    class StuckPipeline:
        has_tracks = False
        last_faces = []

        def process(self, t, image):
            entered.set()
            release.wait(10)
            self.last_faces = [type("Face", (), {"track_id": 3, "detection": type("D", (), {"box": (1, 2, 3, 4)})})]
            return FrameResult(windows=[window(3, t)],
                                  lifecycle=[TrackEvent(source="door", type="track_new", track_id=3, t=t,
                                                        box=(1, 2, 3, 4))])

    state, published, windows = LiveState(), [], BoundedQueue(8)
    state.add_source("door", "camera")
    frames = BoundedQueue(4)
    worker = FaceWorker("door", frames, StuckPipeline(), windows, state, published.append, time.monotonic)
    worker.start()
    frames.put(CapturedFrame("door", 1, 1.0, np.zeros((8, 8, 3), np.uint8)))
    assert entered.wait(10)
    worker.stop()  # what the supervisor does before it starts the replacement
    release.set()
    worker.join(10)
    assert not worker.is_alive()
    assert published == [] and len(windows) == 0 and state.tracks("door")[0] == []


def test_a_restarted_face_workers_tracks_continue_the_sources_ids(settings, astronaut_image):
    """The new tracker counts from 1 again; the ids in events must not, or a new person would take over the
    smoothing state and the /v1/state entry of someone seen before the restart."""
    from service.inference import create_engine
    from service.live.runtime import LiveRuntime

    runtime = LiveRuntime(settings.model_copy(update={"track_min_hits": 1, "tracker": "iou"}), create_engine(settings),
                          ["door=0"],
                          opener=lambda spec: FakeCamera(0, opens=False))  # workers built, never started

    def first_new_track(worker) -> int:
        result = worker.pipeline.process(0.0, astronaut_image)
        return next(e.track_id for e in result.lifecycle if e.type == "track_new")

    spec = runtime.specs[0]
    first = runtime.new_face_worker(spec, BoundedQueue(2), StageTimer())
    replacement = runtime.new_face_worker(spec, BoundedQueue(2), StageTimer())
    assert replacement.pipeline.tracker is not first.pipeline.tracker
    assert (first_new_track(first), first_new_track(replacement)) == (1, 2)


def test_a_track_publishes_at_most_max_event_hz_plus_every_label_change(settings):
    # Windows every sampled frame (8 a second) for 4 s, happy then sad from 2 s: the stage still classifies and
    # smooths every one, but publishes 2 a second, plus the change the moment the smoothed label turns.
    times = [i / 8 for i in range(32)]
    answers = [one_hot(3) if t < 2 else one_hot(4) for t in times]
    stage = EmotionStage(settings.model_copy(update={"max_event_hz": 2.0, "smoothing": "none"}),
                         ScriptedEngine(answers))
    events = stage.classify([("cam", window(1, t)) for t in times], None, StageTimer())
    published = [e for e in events if e is not None]
    assert [e.t_end for e in published] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert [e.label for e in published][3:5] == ["happy", "sad"]
    assert stage.gate.label_changes == {"cam": 1}
    off_beat = EmotionStage(settings.model_copy(update={"max_event_hz": 2.0, "smoothing": "none"}),
                            ScriptedEngine([one_hot(3), one_hot(3), one_hot(4), one_hot(4)]))
    events = off_beat.classify([("cam", window(1, t)) for t in (0.0, 0.125, 0.25)], None, StageTimer())
    assert [e and e.label for e in events] == ["happy", None, "sad"]  # a change never waits for the rate
    off_beat.forget("cam", 1)
    assert off_beat.classify([("cam", window(1, 0.3))], None, StageTimer()) != [None]  # a forgotten track anew


def test_a_restarted_face_worker_numbers_its_frames_on_so_no_scene_feature_is_reused(settings, astronaut_image):
    """The frame cache keys a scene crop by (source, frame number) alone: a new face worker whose frames counted
    from 0 again handed a scene-aware model (OUS) the scene features of frames the old one had encoded."""
    from service.inference import create_engine
    from service.live.runtime import LiveRuntime
    from service.metrics import StageTimer

    runtime = LiveRuntime(settings, create_engine(settings), ["door=0"],
                          opener=lambda spec: FakeCamera(0, opens=False))  # workers built, never started
    frame = cv2.resize(astronaut_image, (640, 480))

    def frame_ids(worker) -> set[int]:
        ids = set()
        for t in range(10):
            for window in worker.pipeline.process(t / 8, frame).windows:
                ids.update(window.frame_ids)
        return ids

    first = frame_ids(runtime.new_face_worker(runtime.specs[0], BoundedQueue(2), StageTimer()))
    second = frame_ids(runtime.new_face_worker(runtime.specs[0], BoundedQueue(2), StageTimer()))
    assert first and second and not first & second


def test_a_tracks_last_emotion_event_comes_before_its_track_lost_live(settings):
    """Before: the final window of a track was queued when the track ended and its track_lost published at once;
    the window was classified after, so listeners (the LLM forwarder) heard of an emotion of a person who had already
    left. Here the face worker's pipeline ends a track with its final window while inference is busy."""
    from service.events import TrackEvent
    from service.ingest.capture import CapturedFrame
    from service.live.bus import EventBus
    from service.live.workers import FaceWorker
    from service.pipeline import FrameResult
    from service.state import LiveState

    class EndsATrack:
        """Two windows of track 1, then its final window with its track_lost, as FacePipeline.process gives them."""

        has_tracks, last_faces = True, []

        def __init__(self):
            self.results = [FrameResult(windows=[window(1, 1.0)]), FrameResult(windows=[window(1, 1.1)]),
                            FrameResult(windows=[window(1, 1.2)], lifecycle=[
                                TrackEvent(source="cam", type="track_lost", track_id=1, t=1.2, box=(0, 0, 1, 1))])]

        def process(self, t, image):
            return self.results.pop(0) if self.results else FrameResult()

    class BusyEngine(ScriptedEngine):
        def predict_windows(self, items, cache=None):
            time.sleep(0.3)  # a robot's CPU with a real model: inference lags the face worker
            return np.stack([one_hot(3) for _ in items])

    state, bus, windows, frames = LiveState(), EventBus(), BoundedQueue(8), BoundedQueue(8)
    state.add_source("cam", "camera")
    state.track_seen("cam", 1, (0, 0, 1, 1), 1.0, 640)
    stage = EmotionStage(settings.model_copy(update={"max_event_hz": 100.0}), BusyEngine(), state)
    ended = EndedTracks(stage, windows, bus.publish)
    events = []
    bus.add_sink(events.append)
    faces = FaceWorker("cam", frames, EndsATrack(), windows, state, bus.publish, time.monotonic, ended=ended.ended)
    inference = InferenceWorker(stage, windows, 1, bus.publish, time.monotonic, after_batch=ended.settle)
    faces.start()
    inference.start()
    try:
        for n in range(3):
            frames.put(CapturedFrame("cam", n, 1.0 + n / 10, np.zeros((4, 4, 3), np.uint8)))
        wait_for(lambda: any(e.type == "track_lost" for e in events), timeout=30)
    finally:
        faces.stop_and_join(5)
        inference.stop_and_join(5)
    assert [(e.type, getattr(e, "t_end", None)) for e in events] == [
        ("emotion", 1.0), ("emotion", 1.1), ("emotion", 1.2), ("track_lost", None)]
