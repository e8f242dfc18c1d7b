"""Keeping the live pipeline running: what the watchdog checks of each component, and how each is restarted.

A restarted face worker gets a new FacePipeline (its own detector and tracker: the stuck worker may still be inside
the old ones, which are not thread-safe); the tracks it had end, with track_lost events. A restarted capture or
inference worker is a new thread on the same queues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from service.events import TrackEvent
from service.ingest.capture import CaptureThread, CapturedFrame
from service.ingest.queues import BoundedQueue
from service.ingest.sources import SourceSpec
from service.live.ended_tracks import EndedTracks
from service.live.watchdog import Health, Watchdog
from service.live.workers import FaceWorker, InferenceWorker
from service.metrics import StageTimer
from service.state import LiveState

log = logging.getLogger(__name__)


@dataclass
class SourceRunner:
    spec: SourceSpec
    frames: BoundedQueue[CapturedFrame]
    capture: CaptureThread
    worker: FaceWorker
    timer: StageTimer


class LiveRuntime(Protocol):
    """What the supervisor needs of service.live.runtime.LiveRuntime: its parts, and how it builds new ones."""

    state: LiveState
    inference: InferenceWorker
    ended_tracks: EndedTracks

    def clock(self) -> float: ...

    def new_capture(self, spec: SourceSpec, frames: BoundedQueue) -> CaptureThread: ...

    def new_face_worker(self, spec: SourceSpec, frames: BoundedQueue, timer: StageTimer) -> FaceWorker: ...

    def new_inference_worker(self, observe_batch: Callable[[int], None] | None = None) -> InferenceWorker: ...


def capture_health(runner: SourceRunner) -> Health:
    """A capture's progress is its heartbeat, one per turn of its loop: a source waiting for frames (a silent ROS
    topic) or reconnecting with its backoff is healthy; only a thread stuck inside one call stalls."""
    capture = runner.capture
    return Health(capture.is_alive(), capture.heartbeat)


def worker_health(worker: FaceWorker | InferenceWorker) -> Health:
    return Health(worker.is_alive(), worker.heartbeat, worker.busy_since)


class Supervisor:
    def __init__(self, runtime: LiveRuntime, watchdog: Watchdog):
        self.runtime, self.watchdog = runtime, watchdog

    def watch_source(self, runner: SourceRunner) -> None:
        name = runner.spec.name
        self.watchdog.watch(f"capture:{name}", lambda: capture_health(runner), lambda: self.restart_capture(runner))
        self.watchdog.watch(f"faces:{name}", lambda: worker_health(runner.worker),
                            lambda: self.restart_face_worker(runner))

    def watch_inference(self) -> None:
        self.watchdog.watch("inference", lambda: worker_health(self.runtime.inference), self.restart_inference)

    def restart_capture(self, runner: SourceRunner) -> None:
        runner.capture.stop()  # a capture stuck inside OpenCV exits when its read returns
        runner.capture = self.runtime.new_capture(runner.spec, runner.frames)
        runner.capture.start()

    def restart_face_worker(self, runner: SourceRunner) -> None:
        runner.worker.stop()
        self.end_tracks(runner.spec.name)
        runner.worker = self.runtime.new_face_worker(runner.spec, runner.frames, runner.timer)
        runner.worker.start()

    def end_tracks(self, source: str) -> None:
        """The new pipeline starts with no track: the old ones end now (their windows in progress are lost; those
        already queued are classified before their track_lost is published)."""
        runtime = self.runtime
        tracks, _ = runtime.state.tracks(source)
        for track in tracks:
            runtime.state.track_lost(source, track.track_id)
            runtime.ended_tracks.ended(TrackEvent(source=source, type="track_lost", track_id=track.track_id,
                                                  t=round(runtime.clock(), 3), box=track.box))

    def restart_inference(self) -> None:
        old = self.runtime.inference
        old.stop()
        self.runtime.inference = self.runtime.new_inference_worker(old.observe_batch)
        self.runtime.inference.start()
