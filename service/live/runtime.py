"""LiveRuntime: builds and runs the live pipeline for every configured source.

    capture thread (per source) --drop-oldest queue--> face worker (per source) --drop-oldest queue-->
    inference worker (all sources, batched) --> smoothing --> EmotionEvent --> event bus --> websocket, log, LLM

The watchdog restarts what dies or stalls; GET /v1/state reads LiveState; /metrics reads `snapshot()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.config import SAMPLE_CLIP, Settings
from service.detect import create_detector
from service.events import EmotionEvent
from service.ingest.queues import BoundedQueue, FullPolicy
from service.ingest.sources import SourceSpec, parse_source, unique_names
from service.live.bus import EventBus
from service.live.capture import CaptureThread, CapturedFrame, open_capture
from service.live.state import LiveState
from service.live.watchdog import Health, Watchdog
from service.live.workers import FaceWorker, InferenceWorker, PendingWindow
from service.metrics import StageTimer
from service.pipeline import FacePipeline, emotion_event
from service.prompts import FaceState, describe_scene
from service.smoothing import Smoother
from service.track import create_tracker

log = logging.getLogger(__name__)


def default_sources(camera_present: Callable[[], bool] | None = None) -> list[str]:
    """Camera 0 when one is there, else the bundled sample clip (played looped at its own rate)."""
    present = camera_present or (lambda: Path("/dev/video0").exists())
    if present():
        return ["0"]
    log.info("no camera at /dev/video0; playing the bundled sample clip %s", SAMPLE_CLIP.name)
    return [str(SAMPLE_CLIP)]


@dataclass
class SourceRunner:
    spec: SourceSpec
    frames: BoundedQueue[CapturedFrame]
    capture: CaptureThread
    worker: FaceWorker
    timer: StageTimer


class LiveRuntime:
    def __init__(self, settings: Settings, engine, sources: list[str] | None = None,
                 opener: Callable[[SourceSpec], object] = open_capture,
                 observe_stage: Callable[[str, float], None] | None = None,
                 observe_batch: Callable[[int], None] | None = None):
        self.settings, self.engine, self.opener = settings, engine, opener
        self._t0 = time.monotonic()
        self.state = LiveState()
        self.bus = EventBus(settings.subscriber_queue)
        self.smoother = Smoother(settings.smoothing, settings.ema_alpha, settings.hysteresis_margin)
        self.windows: BoundedQueue[PendingWindow] = BoundedQueue(settings.window_queue, FullPolicy.DROP_OLDEST)
        self.observe_stage = observe_stage
        self.specs = unique_names([parse_source(s, i) for i, s in enumerate(sources or settings.sources
                                                                             or default_sources())])
        self.runners: dict[str, SourceRunner] = {}
        self.inference = self._new_inference_worker(observe_batch)
        self.watchdog = Watchdog(self.clock, settings.stall_s, settings.watchdog_interval_s,
                                 settings.watchdog_retry_s)
        self._lock = threading.Lock()
        self._started = False
        if settings.event_log:
            self.bus.add_sink(self._jsonl_sink(settings.event_log))

    def clock(self) -> float:
        """The service clock: seconds since the runtime was created (event times use it)."""
        return time.monotonic() - self._t0

    # ---- building -------------------------------------------------------------------------------------------

    def _new_inference_worker(self, observe_batch=None) -> InferenceWorker:
        observe_latency = (lambda s: self.observe_stage("infer", s)) if self.observe_stage else None
        return InferenceWorker(self.engine, self.windows, self.settings.max_batch, self.smoother, self._emotion_event,
                               self.bus.publish, self.clock, observe_batch, observe_latency)

    def _new_capture(self, spec: SourceSpec, frames: BoundedQueue) -> CaptureThread:
        return CaptureThread(spec, frames, self.settings.sample_fps, self.clock,
                             (self.settings.reconnect_backoff_s, self.settings.reconnect_max_s), self.opener)

    def _new_face_worker(self, spec: SourceSpec, frames: BoundedQueue, pipeline: FacePipeline) -> FaceWorker:
        return FaceWorker(spec.name, frames, pipeline, self.windows, self.state, self.bus.publish, self.clock)

    def _build_runner(self, spec: SourceSpec) -> SourceRunner:
        frames: BoundedQueue[CapturedFrame] = BoundedQueue(self.settings.frame_queue, FullPolicy.DROP_OLDEST)
        timer = StageTimer(observer=self.observe_stage)
        # Each source gets its own detector and tracker: both keep per-stream state and are not shared safely.
        pipeline = FacePipeline(spec.name, self.engine.spec, self.settings, create_detector(self.settings),
                                create_tracker(self.settings), timer)
        self.state.add_source(spec.name, spec.kind.value)
        return SourceRunner(spec, frames, self._new_capture(spec, frames),
                            self._new_face_worker(spec, frames, pipeline), timer)

    # ---- events ---------------------------------------------------------------------------------------------

    def _emotion_event(self, pending: PendingWindow, label_index: int, probs: np.ndarray) -> EmotionEvent:
        labels = self.engine.labels
        window, source = pending.window, pending.source
        probs_dict = {label: round(float(p), 4) for label, p in zip(labels, probs)}
        confidence = float(probs[label_index])
        self.state.set_emotion(source, window.track_id, labels[label_index], confidence, probs_dict,
                               window.t_start, window.t_end)
        tracks, width = self.state.tracks(source)
        faces = [FaceState(t.track_id, t.label, t.confidence, t.box, t.t_start, t.t_end)
                 for t in tracks if t.label is not None]
        if not any(f.track_id == window.track_id for f in faces):  # its track ended meanwhile: still describe it
            faces.append(FaceState(window.track_id, labels[label_index], confidence, window.box, window.t_start,
                                   window.t_end))
        prompt = describe_scene(faces, width or 1, self.settings.prompts)
        return emotion_event(window, probs, labels, source, self.engine.spec.name, self.settings.prompts,
                             label_index, prompt)

    @staticmethod
    def _jsonl_sink(path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = threading.Lock()

        def write(event) -> None:
            line = event.model_dump_json()
            with lock, open(path, "a") as f:
                f.write(line + "\n")

        return write

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for spec in self.specs:
                runner = self._build_runner(spec)
                self.runners[spec.name] = runner
                runner.capture.start()
                runner.worker.start()
                self._watch(runner)
            self.inference.start()
            self.watchdog.watch("inference", lambda: self._worker_health(self.inference), self._restart_inference)
            self.watchdog.start()
        log.info("live runtime started: %s", ", ".join(f"{s.name} ({s.kind.value}: {s.uri})" for s in self.specs))

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            if not self._started:
                return
            self.watchdog.stop()
            for runner in self.runners.values():
                runner.capture.stop()
                runner.worker.stop()
            self.inference.stop()
            for thread in [self.watchdog, self.inference] + [t for r in self.runners.values()
                                                             for t in (r.capture, r.worker)]:
                if thread.is_alive():
                    thread.join(timeout)
            self._started = False

    def _watch(self, runner: SourceRunner) -> None:
        name = runner.spec.name
        self.watchdog.watch(f"capture:{name}", lambda: self._capture_health(runner), lambda: self._restart_capture(runner))
        self.watchdog.watch(f"faces:{name}", lambda: self._worker_health(runner.worker),
                            lambda: self._restart_face_worker(runner))

    def _capture_health(self, runner: SourceRunner) -> Health:
        capture = runner.capture
        # While reconnecting, the capture runs its own backoff; only an open source that stops delivering stalls.
        progress = (capture.last_frame_at or capture.opened_at) if capture.status == "open" else None
        return Health(capture.is_alive(), progress)

    @staticmethod
    def _worker_health(worker) -> Health:
        return Health(worker.is_alive(), worker.heartbeat, worker.busy_since)

    def _restart_capture(self, runner: SourceRunner) -> None:
        runner.capture.stop()  # a capture stuck inside OpenCV exits when its read returns
        runner.capture = self._new_capture(runner.spec, runner.frames)
        runner.capture.start()

    def _restart_face_worker(self, runner: SourceRunner) -> None:
        runner.worker.stop()
        runner.worker = self._new_face_worker(runner.spec, runner.frames, runner.worker.pipeline)
        runner.worker.start()

    def _restart_inference(self) -> None:
        self.inference.stop()
        self.inference = self._new_inference_worker(self.inference.observe_batch)
        self.inference.start()

    # ---- reading --------------------------------------------------------------------------------------------

    @property
    def sources_alive(self) -> dict[str, bool]:
        return {name: r.capture.status == "open" for name, r in self.runners.items()}

    def snapshot(self) -> dict:
        """Everything GET /v1/state and /metrics report, read consistently enough for monitoring."""
        now = self.clock()
        sources = {}
        for name, runner in self.runners.items():
            capture, worker = runner.capture, runner.worker
            tracks, width = self.state.tracks(name)
            sources[name] = {
                "kind": runner.spec.kind.value, "uri": str(runner.spec.uri), "status": capture.status,
                "alive": capture.status == "open", "last_error": capture.last_error,
                "fps_processed": round(worker.processed.rate(now), 2),
                "frames_read": capture.frames_read, "frames_sampled": capture.frames_sampled,
                "frames_dropped": runner.frames.dropped, "queue_depth": len(runner.frames),
                "reconnects": capture.reconnects, "frame_width": width,
                "tracks": [{"track_id": t.track_id, "box": t.box, "first_seen": round(t.first_seen, 3),
                            "last_seen": round(t.last_seen, 3), "label": t.label, "confidence": t.confidence,
                            "probs": t.probs} for t in sorted(tracks, key=lambda t: t.track_id)],
            }
        return {"t": round(now, 3), "model": self.engine.spec.name, "sources": sources,
                "windows_queue_depth": len(self.windows), "windows_dropped": self.windows.dropped,
                "windows_classified": self.inference.windows_done, "events_published": self.bus.published,
                "subscribers": self.bus.subscribers, "events_dropped_slow_clients": self.bus.dropped_total,
                "watchdog_restarts": dict(self.watchdog.restarts)}
