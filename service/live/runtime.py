"""LiveRuntime: builds and wires the live pipeline for every configured source, starts and stops it, and reports
its state.

    capture thread (per source) --drop-oldest queue--> face worker (per source) --drop-oldest queue-->
    inference worker (all sources, batched; service/emotions.py: smoothing, prompt, event) --> event bus -->
    websocket, log, LLM

The supervisor (service/live/supervision.py) watches the parts and restarts them. GET /v1/state and /metrics read
`snapshot()`; the websocket route asks `has_source`, the browser view `view_frame`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from service.config import SAMPLE_CLIP, Settings
from service.detect import create_detector
from service.detect.regions import SearchCounts
from service.emotions import EmotionStage
from service.inference.base import Engine
from service.ingest.capture import CaptureThread, CapturedFrame, SourceCounters, open_capture
from service.ingest.frame_source import FrameLimits, FrameSource
from service.ingest.queues import BoundedQueue, FullPolicy
from service.ingest.sources import SourceSpec, parse_source, unique_names
from service.live.bus import EventBus
from service.live.ended_tracks import EndedTracks
from service.live.latest_frames import FaceLabel, LatestFrames
from service.live.sinks import JsonlLog, QueuedSink
from service.state import LiveState, RuntimeStatus, SourceStatus, track_status
from service.live.supervision import SourceRunner, Supervisor
from service.live.watchdog import Watchdog
from service.live.workers import ErrorTally, FaceWorker, InferenceWorker, PendingWindow
from service.metrics import StageTimer
from service.people.registry import PersonRegistry
from service.people.wiring import create_face_reader, create_registry
from service.pipeline import FacePipeline
from service.track import create_tracker

log = logging.getLogger(__name__)


def frame_limits(settings: Settings) -> FrameLimits:
    return FrameLimits(settings.max_frame_side, settings.max_frame_pixels, settings.max_frame_aspect)


def default_sources(camera_present: Callable[[], bool] | None = None) -> list[str]:
    """Camera 0 when one is there, else the bundled sample clip (played looped at its own rate)."""
    present = camera_present or (lambda: Path("/dev/video0").exists())
    if present():
        return ["0"]
    log.info("no camera at /dev/video0; playing the bundled sample clip %s", SAMPLE_CLIP.name)
    return [str(SAMPLE_CLIP)]


class LiveRuntime:
    def __init__(self, settings: Settings, engine: Engine, sources: list[str] | None = None,
                 opener: Callable[[SourceSpec], FrameSource] | None = None,
                 observe_stage: Callable[[str, float], None] | None = None,
                 observe_batch: Callable[[int], None] | None = None,
                 observe_frame_to_event: Callable[[float], None] | None = None):
        self.settings, self.engine = settings, engine
        self.opener = opener or functools.partial(open_capture, timeout_ms=settings.capture_timeout_ms,
                                                   decode_threads=settings.decode_threads,
                                                   limits=frame_limits(settings))
        self._t0 = time.monotonic()
        self.state = LiveState()
        self.bus = EventBus(settings.subscriber_queue)
        self.windows: BoundedQueue[PendingWindow] = BoundedQueue(settings.window_queue, FullPolicy.DROP_OLDEST)
        # The browser view's latest frame per source (memory only; encoded on request): none when the view is off.
        self.latest_frames = (LatestFrames(settings.view_max_fps, settings.view_max_side, settings.view_jpeg_quality,
                                           time.monotonic) if settings.view else None)
        self.observe_stage = observe_stage
        self.specs = unique_names([parse_source(s, i) for i, s in enumerate(sources or settings.sources
                                                                             or default_sources())])
        self.runners: dict[str, SourceRunner] = {}
        # One id counter per source for all its face workers: a restarted one continues the ids, so a new person
        # never takes over the smoothing state or the place in /v1/state of one seen before, and a new frame never
        # the scene features of one encoded before.
        self._track_ids: dict[str, Iterator[int]] = {}
        self._frame_ids: dict[str, Iterator[int]] = {}
        # The same for counts: a source's, its detector's searches and its face worker's errors count for the
        # service's lifetime, across restarts of its threads.
        self._source_counters: dict[str, SourceCounters] = {}
        self._search_counts: dict[str, SearchCounts] = {}
        self._face_errors: dict[str, ErrorTally] = {}
        # The people each source has seen lately (none with person_recognition off), kept across restarts of its
        # face worker; descriptors in memory only, forgotten by forget_people() and stop().
        self._registries: dict[str, PersonRegistry | None] = {}
        self._inference_errors = ErrorTally("inference on a batch of windows")
        self.emotions = EmotionStage(settings, engine, self.state)
        self.ended_tracks = EndedTracks(self.emotions, self.windows, self.bus.publish)
        self.observe_frame_to_event = observe_frame_to_event
        self.inference = self.new_inference_worker(observe_batch)
        self.watchdog = Watchdog(self.clock, settings.stall_s, settings.watchdog_interval_s,
                                 settings.watchdog_retry_s)
        self.supervisor = Supervisor(self, self.watchdog)
        self._lock = threading.Lock()
        self._started = False
        # Sinks that write or send, each on its own thread (the inference worker never waits for a disk).
        self.sinks: list[QueuedSink] = []
        if settings.event_log:
            event_log = JsonlLog(settings.event_log, int(settings.event_log_max_mb * 1e6), settings.event_log_backups)
            self.add_sink(QueuedSink("event_log", event_log.write, settings.sink_queue, on_stop=event_log.close))

    def add_sink(self, sink: QueuedSink) -> None:
        """A queued sink fed every event; started and stopped with the runtime."""
        self.sinks.append(sink)
        self.bus.add_sink(sink)
        if self._started:
            sink.start()

    def clock(self) -> float:
        """The service clock: seconds since the runtime was created (event times use it)."""
        return time.monotonic() - self._t0

    # ---- building (also used by the supervisor's restarts) --------------------------------------------------

    def new_inference_worker(self, observe_batch: Callable[[int], None] | None = None) -> InferenceWorker:
        return InferenceWorker(self.emotions, self.windows, self.settings.max_batch, self.bus.publish, self.clock,
                               self.ended_tracks.settle, observe_batch, StageTimer(observer=self.observe_stage),
                               self.observe_frame_to_event, self.settings.frame_cache_frames, self._inference_errors)

    def new_capture(self, spec: SourceSpec, frames: BoundedQueue) -> CaptureThread:
        return CaptureThread(spec, frames, self.settings.sample_fps, self.clock,
                             (self.settings.reconnect_backoff_s, self.settings.reconnect_max_s), self.opener,
                             self._source_counters.setdefault(spec.name, SourceCounters()),
                             self.settings.capture_timeout_ms / 1000)

    def new_face_worker(self, spec: SourceSpec, frames: BoundedQueue, timer: StageTimer) -> FaceWorker:
        """Always with a new pipeline: its own detector and tracker (they keep per-stream state and are not shared
        safely, not even with the worker this one replaces)."""
        pipeline = FacePipeline(spec.name, self.engine.spec, self.settings, create_detector(self.settings),
                                create_tracker(self.settings), timer,
                                track_ids=self._track_ids.setdefault(spec.name, itertools.count(1)),
                                search_counts=self._search_counts.setdefault(spec.name, SearchCounts()),
                                frame_ids=self._frame_ids.setdefault(spec.name, itertools.count()),
                                reader=create_face_reader(self.settings, self._registry(spec.name), self.clock()))
        errors = self._face_errors.setdefault(spec.name, ErrorTally(f"face worker {spec.name} on a frame"))
        return FaceWorker(spec.name, frames, pipeline, self.windows, self.state, self.bus.publish, self.clock,
                          self.latest_frames, self.settings.track_silence_s, self.ended_tracks.ended, errors)

    def _registry(self, source: str) -> PersonRegistry | None:
        if source not in self._registries:
            self._registries[source] = create_registry(self.settings)
        return self._registries[source]

    def forget_people(self) -> int:
        """Forget everyone every source remembers (DELETE /v1/people; at stop): how many people that was. Faces in
        view keep their person_id until their track ends, but nothing of them is kept to recognise them by."""
        return sum(registry.forget_all() for registry in self._registries.values() if registry is not None)

    def people_remembered(self) -> int:
        return sum(len(registry) for registry in self._registries.values() if registry is not None)

    def _build_runner(self, spec: SourceSpec) -> SourceRunner:
        frames: BoundedQueue[CapturedFrame] = BoundedQueue(self.settings.frame_queue, FullPolicy.DROP_OLDEST)
        timer = StageTimer(observer=self.observe_stage)
        self.state.add_source(spec.name, spec.kind.value)
        return SourceRunner(spec, frames, self.new_capture(spec, frames), self.new_face_worker(spec, frames, timer),
                            timer)

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for sink in self.sinks:
                sink.start()
            for spec in self.specs:
                if spec.name in self.runners:  # unique_names makes this impossible; a runner is never overwritten
                    raise RuntimeError(f"two live sources named {spec.name!r}")
                runner = self._build_runner(spec)
                self.runners[spec.name] = runner
                runner.capture.start()
                runner.worker.start()
                self.supervisor.watch_source(runner)
            self.inference.start()
            self.supervisor.watch_inference()
            self.watchdog.start()
        log.info("live runtime started: %s", ", ".join(f"{s.name} ({s.kind.value}: {s.shown})" for s in self.specs))

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            if not self._started:
                return
            # The watchdog first, and joined: in the middle of a check it would take a thread stopped here for one
            # that died, and start a new one that outlives the runtime.
            self.watchdog.stop()
            if self.watchdog.is_alive():
                self.watchdog.join(timeout)
            for runner in self.runners.values():
                runner.capture.stop()
                runner.worker.stop()
            self.inference.stop()
            for thread in [self.inference] + [t for r in self.runners.values() for t in (r.capture, r.worker)]:
                if thread.is_alive():
                    thread.join(timeout)
            for sink in self.sinks:
                sink.stop()
            self.forget_people()
            self._started = False

    # ---- reading --------------------------------------------------------------------------------------------

    def has_source(self, name: str) -> bool:
        return name in self.runners

    def source_names(self) -> list[str]:
        return self.state.sources()

    def view_frame(self, source: str) -> tuple[bytes, float] | None:
        """The source's latest frame as JPEG, each tracked face's box, id, label and confidence drawn on it, and its
        time; None when it has delivered no frame yet. KeyError: no such source, or the view is off."""
        if self.latest_frames is None or source not in self.state.sources():
            raise KeyError(source)

        def labels() -> dict[int, FaceLabel]:
            tracks, _ = self.state.tracks(source)
            return {t.track_id: FaceLabel(t.label, t.confidence) for t in tracks}

        return self.latest_frames.jpeg(source, labels)

    @property
    def sources_alive(self) -> dict[str, bool]:
        return {name: r.capture.status == "open" for name, r in self.runners.items()}

    def snapshot(self) -> RuntimeStatus:
        """Everything GET /v1/state and /metrics report, read consistently enough for monitoring."""
        now = self.clock()
        sources = {}
        for name, runner in self.runners.items():
            capture, worker = runner.capture, runner.worker
            tracks, width = self.state.tracks(name)
            counters = capture.counters
            sources[name] = SourceStatus(
                kind=runner.spec.kind.value, uri=runner.spec.shown, status=capture.status,
                alive=capture.status == "open", last_error=capture.last_error, waiting_for=capture.waiting_for,
                fps_processed=round(worker.processed.rate(now), 2), frames_read=counters.frames_read,
                frames_sampled=counters.frames_sampled, frames_dropped=runner.frames.dropped,
                frames_skipped=counters.frames_skipped, skipped=dict(counters.skipped),
                last_skipped=counters.last_skip, worker_errors=worker.error_tally.by_kind(),
                queue_depth=len(runner.frames), reconnects=counters.reconnects, frame_width=width,
                label_changes=self.emotions.gate.label_changes[name],
                detector_searches=asdict(self._search_counts.get(name, SearchCounts())),
                tracks=[track_status(t) for t in sorted(tracks, key=lambda t: t.track_id)])
        return RuntimeStatus(
            t=round(now, 3), model=self.engine.spec.name, sources=sources, windows_queue_depth=len(self.windows),
            windows_dropped=self.windows.dropped, windows_classified=self.inference.windows_done,
            inference_errors=self._inference_errors.by_kind(),
            events_published=self.bus.published, subscribers=self.bus.subscribers,
            events_dropped_slow_clients=self.bus.dropped_total, watchdog_restarts=dict(self.watchdog.restarts))
