"""The two kinds of worker thread behind capture.

FaceWorker (one per source): sampled frames -> FacePipeline (detect, track, crop, window buffers) -> lifecycle
events and ready windows. InferenceWorker (one for all sources): ready windows from every track and source batched
into one inference call through service/emotions.py's EmotionStage (smoothing, prompt, event), each event
published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from service.emotions import EmotionStage
from service.inference.engine import FrameFeatureCache
from service.ingest.queues import BoundedQueue
from service.ingest.capture import CapturedFrame
from service.live.latest_frames import LatestFrames, ViewFace
from service.state import LiveState
from service.metrics import RateMeter, StageTimer
from service.pipeline import FacePipeline, FrameResult
from service.windows import Window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingWindow:
    source: str
    window: Window


class _Worker(threading.Thread):
    """A thread with a stop flag and a heartbeat the watchdog reads."""

    def __init__(self, name: str, clock: Callable[[], float]):
        super().__init__(name=name, daemon=True)
        self.clock = clock
        self._stop_event = threading.Event()
        self.heartbeat = clock()
        self.busy_since: float | None = None  # set while processing an item
        self.errors = 0

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()


class FaceWorker(_Worker):
    def __init__(self, source: str, frames: BoundedQueue[CapturedFrame], pipeline: FacePipeline,
                 windows: BoundedQueue[PendingWindow], state: LiveState, publish: Callable[[object], None],
                 clock: Callable[[], float], latest_frames: LatestFrames | None = None, silence_s: float = 3.0):
        super().__init__(f"faces-{source}", clock)
        # A source silent this long (camera unplugged, stream down) ends its tracks: nobody is known to be in view.
        self.silence_s = silence_s
        self.source, self.frames, self.pipeline, self.windows = source, frames, pipeline, windows
        self.state, self.publish = state, publish
        self.latest_frames = latest_frames  # the browser view's store; None when the view is off
        self.processed = RateMeter()
        self.last_frame_at = clock()

    def run(self) -> None:
        while not self.stopping:
            self.heartbeat = self.clock()
            frame = self.frames.get(timeout=0.5)
            if self.stopping:
                continue
            if frame is None:
                if self.pipeline.has_tracks and self.clock() - self.last_frame_at > self.silence_s:
                    self._emit(self.pipeline.finish())
                continue
            self.last_frame_at = self.clock()
            self.busy_since = self.clock()
            try:
                self._process(frame)
            except Exception:
                self.errors += 1
                log.exception("face worker %s failed on a frame; continuing", self.source)
            finally:
                self.busy_since = None
            self.processed.tick(self.clock())

    def _process(self, frame: CapturedFrame) -> None:
        result = self.pipeline.process(frame.t, frame.image)
        if self.stopping:
            # Replaced while inside the pipeline (stuck): the supervisor ended its tracks and a new worker with a new
            # tracker owns the source; this late result would bring them back as tracks nobody will ever end.
            return
        width = frame.image.shape[1]
        for face in self.pipeline.last_faces:
            self.state.track_seen(self.source, face.track_id, face.detection.box, frame.t, width, frame.image.shape[0])
        if self.latest_frames is not None:
            self.latest_frames.put(self.source, frame.t, frame.image,
                                   [ViewFace(f.track_id, f.detection.box) for f in self.pipeline.last_faces])
        self._emit(result)

    def _emit(self, result: FrameResult) -> None:
        # Windows first: when a track_lost is published, its last window is already queued for inference (the
        # smoothing of an ended track is forgotten once none of its windows waits).
        for window in result.windows:
            self.windows.put(PendingWindow(self.source, window))
        for event in result.lifecycle:
            if event.type == "track_lost":
                self.state.track_lost(self.source, event.track_id)
            self.publish(event)


class InferenceWorker(_Worker):
    """Batches ready windows through the emotion stage and publishes each window's event; `after_batch` runs once
    per batch. `timer` is told how long each inference call took."""

    def __init__(self, stage: EmotionStage, windows: BoundedQueue[PendingWindow], max_batch: int,
                 publish: Callable[[object], None], clock: Callable[[], float],
                 after_batch: Callable[[], None] | None = None, observe_batch: Callable[[int], None] | None = None,
                 timer: StageTimer | None = None, observe_frame_to_event: Callable[[float], None] | None = None,
                 frame_cache_frames: int = 4096):
        super().__init__("inference", clock)
        self.stage, self.windows, self.max_batch = stage, windows, max_batch
        self.publish, self.after_batch = publish, after_batch
        self.observe_batch, self.observe_frame_to_event = observe_batch, observe_frame_to_event
        self.timer = timer or StageTimer()
        self.windows_done = 0
        # This worker's own: a frame shared by windows is encoded once.
        self.frame_cache = FrameFeatureCache(frame_cache_frames)

    def run(self) -> None:
        while not self.stopping:
            self.heartbeat = self.clock()
            first = self.windows.get(timeout=0.5)
            if first is None or self.stopping:
                continue
            batch = [first] + self.windows.drain(self.max_batch - 1)
            self.busy_since = self.clock()
            try:
                self._infer(batch)
            except Exception:
                self.errors += 1
                log.exception("inference failed on a batch of %d windows; continuing", len(batch))
            finally:
                self.busy_since = None

    def _infer(self, batch: list[PendingWindow]) -> None:
        events = self.stage.classify([(p.source, p.window) for p in batch], self.frame_cache, self.timer)
        if self.observe_batch:
            self.observe_batch(len(batch))
        for pending, event in zip(batch, events):
            self.windows_done += 1
            if event is None:  # classified, smoothing updated; the track's event rate holds this one back
                continue
            self.publish(event)
            if self.observe_frame_to_event:
                # The window's last frame was captured at t_end on the same clock.
                self.observe_frame_to_event(self.clock() - pending.window.t_end)
        if self.after_batch:
            self.after_batch()
