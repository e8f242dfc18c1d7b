"""The two kinds of worker thread behind capture.

FaceWorker (one per source): sampled frames -> FacePipeline (detect, track, crop, window buffers) -> lifecycle
events and ready windows. InferenceWorker (one for all sources): ready windows from every track and source batched
into one inference call through service/emotions.py's EmotionStage (smoothing, prompt, event), each event
published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from service.emotions import EmotionStage
from service.inference.engine import FrameFeatureCache
from service.ingest.queues import BoundedQueue
from service.ingest.capture import CapturedFrame
from service.live.latest_frames import LatestFrames, ViewFace
from service.events import TrackEvent
from service.state import LiveState
from service.metrics import RateMeter, StageTimer
from service.pipeline import FacePipeline, FrameResult
from service.threads import POLL_S, StoppableThread
from service.windows import Window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingWindow:
    source: str
    window: Window


class ErrorTally:
    """A worker's errors by kind (the exception's type), for /v1/state and /metrics; each kind is logged at most
    once every `interval_s` (with its traceback the first time, then with the count since), so a frame that fails
    on every sampled frame writes one line a minute, not eight a second. One per source (or per inference stage),
    kept across restarts of its worker."""

    def __init__(self, what: str, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.what, self.interval_s, self.clock = what, interval_s, clock
        self.counts: Counter[str] = Counter()
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (logged at, count then)
        self._lock = threading.Lock()

    def note(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        now = self.clock()
        with self._lock:
            self.counts[kind] += 1
            count = self.counts[kind]
            last = self._logged.get(kind)
            if last is not None and now - last[0] < self.interval_s:
                return
            self._logged[kind] = (now, count)
        if last is None:
            log.error("%s failed (%s); it goes on with the next one", self.what, kind, exc_info=exc)
        else:
            log.error("%s failed %d more times with %s in the last %.0f s (latest: %s)", self.what, count - last[1],
                      kind, now - last[0], str(exc).splitlines()[0][:200] if str(exc) else kind)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def by_kind(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class _Worker(StoppableThread):
    """A stoppable thread with a heartbeat the watchdog reads, and a tally of its errors."""

    def __init__(self, name: str, clock: Callable[[], float], errors: ErrorTally):
        super().__init__(name)
        self.clock = clock
        self.heartbeat = clock()
        self.busy_since: float | None = None  # set while processing an item
        self.error_tally = errors

    @property
    def errors(self) -> int:
        return self.error_tally.total


class FaceWorker(_Worker):
    """`publish` takes track_new events; `ended` the track_lost ones (published after the track's last window: see
    service/live/ended_tracks.py)."""

    def __init__(self, source: str, frames: BoundedQueue[CapturedFrame], pipeline: FacePipeline,
                 windows: BoundedQueue[PendingWindow], state: LiveState, publish: Callable[[object], None],
                 clock: Callable[[], float], latest_frames: LatestFrames | None = None, silence_s: float = 3.0,
                 ended: Callable[[TrackEvent], None] | None = None, errors: ErrorTally | None = None):
        super().__init__(f"faces-{source}", clock, errors or ErrorTally(f"face worker {source} on a frame"))
        self.ended = ended or publish
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
            frame = self.frames.get(timeout=POLL_S)
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
            except Exception as exc:
                self.error_tally.note(exc)
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
            self.state.track_seen(self.source, face.track_id, face.detection.box, frame.t, width, frame.image.shape[0],
                                  self.pipeline.readings.get(face.track_id))
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
                self.state.track_lost(self.source, event.track_id)  # out of the state (and prompts) at once
                self.ended(event)
            else:
                self.publish(event)


class InferenceWorker(_Worker):
    """Batches ready windows through the emotion stage and publishes each window's event; `after_batch` runs after
    each batch and every POLL_S while no window waits (never while a batch is in flight). `timer` is told how long
    each inference call took."""

    def __init__(self, stage: EmotionStage, windows: BoundedQueue[PendingWindow], max_batch: int,
                 publish: Callable[[object], None], clock: Callable[[], float],
                 after_batch: Callable[[], None] | None = None, observe_batch: Callable[[int], None] | None = None,
                 timer: StageTimer | None = None, observe_frame_to_event: Callable[[float], None] | None = None,
                 frame_cache_frames: int = 4096, errors: ErrorTally | None = None):
        super().__init__("inference", clock, errors or ErrorTally("inference on a batch of windows"))
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
            first = self.windows.get(timeout=POLL_S)
            if self.stopping:
                continue
            if first is None:
                if self.after_batch:
                    self.after_batch()
                continue
            batch = [first] + self.windows.drain(self.max_batch - 1)
            self.busy_since = self.clock()
            try:
                self._infer(batch)
            except Exception as exc:
                self.error_tally.note(exc)
            finally:
                self.busy_since = None
            if self.after_batch:
                self.after_batch()

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
