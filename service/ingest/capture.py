"""Capture: one thread per source reading frames with OpenCV, keeping only frames the sampler wants, handing them
over through a small drop-oldest queue, and reopening a source that fails, with backoff.

A file source plays at its own frame rate and loops, like a camera would deliver it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from service.ingest.queues import BoundedQueue
from service.ingest.sampling import FrameSampler
from service.ingest.sources import SourceKind, SourceSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedFrame:
    source: str
    seq: int  # frames read from the source so far
    t: float  # seconds on the service clock
    image: np.ndarray  # BGR uint8


def open_capture(spec: SourceSpec, timeout_ms: int = 5000, decode_threads: int = 1) -> cv2.VideoCapture:
    """OpenCV capture for a source; network streams get open/read timeouts so a dead server cannot hang us. Files
    and streams are decoded by FFmpeg with `decode_threads` threads (0: FFmpeg's choice, one per core)."""
    if spec.kind is SourceKind.ROS:  # a reader with the same interface; DDS code imported only for such a source
        from service.ros.images import ImageTopicCapture

        return ImageTopicCapture(spec.uri, timeout_ms / 1000)
    if spec.kind is SourceKind.CAMERA:
        return cv2.VideoCapture(spec.uri)
    params = [cv2.CAP_PROP_N_THREADS, decode_threads]
    if spec.kind is SourceKind.STREAM:
        params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return cv2.VideoCapture(spec.uri, cv2.CAP_FFMPEG, params)


def backoff_delays(first: float, longest: float):
    """first, 2*first, 4*first, ... capped at longest (pure generator)."""
    delay = first
    while True:
        yield delay
        delay = min(longest, delay * 2)


class CaptureThread(threading.Thread):
    def __init__(self, spec: SourceSpec, out: BoundedQueue[CapturedFrame], sample_fps: float,
                 clock: Callable[[], float], backoff: tuple[float, float] = (0.5, 30.0),
                 opener: Callable[[SourceSpec], cv2.VideoCapture] = open_capture):
        super().__init__(name=f"capture-{spec.name}", daemon=True)
        self.spec, self.out, self.clock, self.opener = spec, out, clock, opener
        self.sampler = FrameSampler(sample_fps)
        self.backoff = backoff
        self._stop_event = threading.Event()
        self.status = "starting"
        self.frames_read = 0
        self.frames_sampled = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.last_frame_at: float | None = None  # service clock, for the watchdog
        self.opened_at: float | None = None
        # Sources with a clock of their own (ROS image topics: a capture with `stamp`, `skipped` and `failure`):
        # their stamps of the newest sampled frames, and broken messages skipped.
        self.source_stamps: deque[tuple[float, object]] = deque(maxlen=256)
        self.frames_skipped = 0

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        delays = backoff_delays(*self.backoff)
        while not self.stopping:
            capture = self.opener(self.spec)
            if not capture.isOpened():
                capture.release()
                reason = getattr(capture, "failure", None) or f"cannot open {self.spec.kind.value} {self.spec.uri}"
                self._failed(reason, next(delays))
                continue
            # A file looping, or a source back after a failure: said once at INFO, not on every loop.
            first_or_recovered = self.opened_at is None or self.status == "reconnecting"
            self.status, self.opened_at = "open", self.clock()
            log.log(logging.INFO if first_or_recovered else logging.DEBUG, "source %s opened (%s)", self.spec.name,
                    self.spec.uri)
            read = self._read_until_failure(capture)
            reason = (getattr(capture, "failure", None)
                      or f"{self.spec.kind.value} {self.spec.uri} stopped delivering frames")
            capture.release()
            if self.stopping:
                break
            if self.spec.kind is SourceKind.FILE and read > 0:
                delays = backoff_delays(*self.backoff)  # a file that played through loops at once
                continue
            self._failed(reason, next(delays))
            if read > 0:
                delays = backoff_delays(*self.backoff)
        self.status = "stopped"

    def _failed(self, reason: str, delay: float) -> None:
        self.status, self.last_error = "reconnecting", reason
        self.reconnects += 1
        log.warning("source %s: %s; retrying in %.1f s", self.spec.name, reason, delay)
        self._stop_event.wait(delay)

    def source_stamp(self, t: float) -> object | None:
        """The source's own stamp of the sampled frame captured at service time `t` (as events round it, to the
        millisecond), or None."""
        for frame_t, stamp in reversed(list(self.source_stamps)):  # a copy: the capture appends meanwhile
            if abs(frame_t - t) <= 0.0005 + 1e-9:
                return stamp
        return None

    def _read_until_failure(self, capture: cv2.VideoCapture) -> int:
        file_fps = capture.get(cv2.CAP_PROP_FPS) if self.spec.kind is SourceKind.FILE else 0.0
        period = 1.0 / file_fps if file_fps and file_fps > 0 else (1 / 25 if self.spec.kind is SourceKind.FILE else 0)
        read = 0
        started = self.clock()
        skipped = self.frames_skipped
        # OpenCV's captures decode on grab() and convert to BGR on retrieve(), ROS topics take a message on grab()
        # and decode it on retrieve(): frames the sampler drops (two of three at 25 fps) skip that (bench live_cpu).
        split = hasattr(capture, "grab") and hasattr(capture, "retrieve")
        while not self.stopping:
            ok, image = (capture.grab(), None) if split else capture.read()
            self.frames_skipped = skipped + getattr(capture, "skipped", 0)
            if not ok or (image is None and not split):
                return read
            read += 1
            self.frames_read += 1
            self.last_error = None  # delivering again: an old failure is history, not the current state
            now = self.clock()
            self.last_frame_at = now
            if self.sampler.accept(now):
                if split:
                    ok, image = capture.retrieve()
                    self.frames_skipped = skipped + getattr(capture, "skipped", 0)
                    if not ok or image is None:
                        if getattr(capture, "failure", None) or not hasattr(capture, "skipped"):
                            return read
                        continue  # a broken image the reader skipped (and counted): the next one
                self.frames_sampled += 1
                if getattr(capture, "stamp", None) is not None:
                    self.source_stamps.append((now, capture.stamp))
                self.out.put(CapturedFrame(self.spec.name, self.frames_read, now, image))
            if period:
                # Play a file at its own rate: wait for this frame's slot (interruptible by stop()).
                wait = started + read * period - self.clock()
                if wait > 0:
                    self._stop_event.wait(wait)
        return read
