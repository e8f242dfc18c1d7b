"""The two kinds of worker thread behind capture.

FaceWorker (one per source): sampled frames -> FacePipeline (detect, track, crop, window buffers) -> lifecycle
events and ready windows. InferenceWorker (one for all sources): ready windows from every track and source batched
into one inference call -> smoothing -> emotion events with prompts describing everyone in view.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.events import EmotionEvent
from service.inference.engine import FrameFeatureCache
from service.ingest.queues import BoundedQueue
from service.live.capture import CapturedFrame
from service.live.state import LiveState
from service.metrics import RateMeter
from service.pipeline import FacePipeline
from service.smoothing import Smoother
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
    # A source silent this long (camera unplugged, stream down) ends its tracks: nobody is known to be in view.
    SILENCE_ENDS_TRACKS_S = 3.0

    def __init__(self, source: str, frames: BoundedQueue[CapturedFrame], pipeline: FacePipeline,
                 windows: BoundedQueue[PendingWindow], state: LiveState, publish: Callable[[object], None],
                 clock: Callable[[], float]):
        super().__init__(f"faces-{source}", clock)
        self.source, self.frames, self.pipeline, self.windows = source, frames, pipeline, windows
        self.state, self.publish = state, publish
        self.processed = RateMeter()
        self.last_frame_at = clock()

    def run(self) -> None:
        while not self.stopping:
            self.heartbeat = self.clock()
            frame = self.frames.get(timeout=0.5)
            if self.stopping:
                continue
            if frame is None:
                if self.pipeline.has_tracks and self.clock() - self.last_frame_at > self.SILENCE_ENDS_TRACKS_S:
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
        width = frame.image.shape[1]
        for face in self.pipeline.last_faces:
            self.state.track_seen(self.source, face.track_id, face.detection.box, frame.t, width)
        self._emit(result)

    def _emit(self, result) -> None:
        for event in result.lifecycle:
            if event.type == "track_lost":
                self.state.track_lost(self.source, event.track_id)
            self.publish(event)
        for window in result.windows:
            self.windows.put(PendingWindow(self.source, window))


class InferenceWorker(_Worker):
    def __init__(self, engine, windows: BoundedQueue[PendingWindow], max_batch: int, smoother: Smoother,
                 make_event: Callable[[PendingWindow, int, np.ndarray], EmotionEvent], publish: Callable[[object], None],
                 clock: Callable[[], float], observe_batch: Callable[[int], None] | None = None,
                 observe_latency: Callable[[float], None] | None = None):
        super().__init__("inference", clock)
        self.engine, self.windows, self.max_batch, self.smoother = engine, windows, max_batch, smoother
        self.make_event, self.publish = make_event, publish
        self.observe_batch, self.observe_latency = observe_batch, observe_latency
        self.windows_done = 0
        self.frame_cache = FrameFeatureCache()  # this worker's own: a frame shared by windows is encoded once

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
        started = self.clock()
        probs = self.engine.predict_windows([(p.source, p.window) for p in batch], self.frame_cache)
        if self.observe_latency:
            self.observe_latency(self.clock() - started)
        if self.observe_batch:
            self.observe_batch(len(batch))
        for pending, p in zip(batch, probs):
            label, smoothed = self.smoother.update(pending.source, pending.window.track_id, p)
            self.publish(self.make_event(pending, label, smoothed))
            self.windows_done += 1
