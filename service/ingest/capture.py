"""Capture: one thread per live source reading frames (through the FrameSource protocol of frame_source.py),
decoding only the frames the sampler keeps, handing them over through a small drop-oldest queue, and reopening a
source that fails, with backoff.

A source is in one of these states (`status` in /v1/state):

    starting      the thread has not opened it yet
    open          frames arrive and are used
    waiting       the source is there but nothing usable came for `silence_s` (a ROS topic whose publisher is
                  gone or silent, or that sends only messages the service skips): not ready, not restarted; the
                  first frame after it starts afresh (the face worker ended the tracks meanwhile)
    reconnecting  it failed or ended; reopened after the next backoff delay
    stopped       the thread has ended

A file source plays at its own frame rate and loops, like a camera would deliver it. What a source sends never
ends the thread: frames that cannot be used are skipped and counted by reason. The counts of a source live in its
`SourceCounters`, which the runtime keeps for the service's lifetime, across restarts of the capture thread.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from service.ingest.frame_source import FrameLimits, FrameSource, Grab, OpenCvSource, Skip
from service.ingest.queues import BoundedQueue
from service.ingest.sampling import FrameSampler
from service.ingest.sources import SourceKind, SourceSpec
from service.threads import POLL_S, StoppableThread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedFrame:
    source: str
    seq: int  # frames read from the source so far
    t: float  # seconds on the service clock
    image: np.ndarray  # BGR uint8


@dataclass
class SourceCounters:
    """What one source did since the service started (one per source, shared by its successive capture threads)."""

    frames_read: int = 0  # frames or messages taken from the source, usable or not
    frames_sampled: int = 0  # frames kept at sample_fps and handed on
    reconnects: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # frames skipped, by reason (frame_source.py's words)
    last_skip: str | None = None  # the detail of the latest one

    @property
    def frames_skipped(self) -> int:
        return sum(self.skipped.values())


def open_capture(spec: SourceSpec, timeout_ms: int = 5000, decode_threads: int = 1,
                 limits: FrameLimits = FrameLimits()) -> FrameSource:
    """The FrameSource for a source spec. Network streams get open/read timeouts so a dead server cannot hang us;
    files and streams are decoded by FFmpeg with `decode_threads` threads (0: FFmpeg's choice, one per core)."""
    if spec.kind is SourceKind.ROS:  # DDS code imported only for such a source
        from service.ros.images import ImageTopicSource

        return ImageTopicSource(str(spec.uri), limits)
    what = f"{spec.kind.value} {spec.shown}"
    if spec.kind is SourceKind.CAMERA:
        return OpenCvSource(cv2.VideoCapture(spec.uri), what, limits)
    params = [cv2.CAP_PROP_N_THREADS, decode_threads]
    if spec.kind is SourceKind.STREAM:
        params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return OpenCvSource(cv2.VideoCapture(spec.uri, cv2.CAP_FFMPEG, params), what, limits,
                        is_file=spec.kind is SourceKind.FILE)


def backoff_delays(first: float, longest: float):
    """first, 2*first, 4*first, ... capped at longest (pure generator)."""
    delay = first
    while True:
        yield delay
        delay = min(longest, delay * 2)


class CaptureThread(StoppableThread):
    """`silence_s`: a source that is open but gives no usable frame this long is `waiting`. `heartbeat` (service
    clock) is the last turn of the loop: the watchdog restarts a capture whose heartbeat stopped (a thread stuck in
    a call), never one that is waiting or reconnecting."""

    def __init__(self, spec: SourceSpec, out: BoundedQueue[CapturedFrame], sample_fps: float,
                 clock: Callable[[], float], backoff: tuple[float, float] = (0.5, 30.0),
                 opener: Callable[[SourceSpec], FrameSource] = open_capture, counters: SourceCounters | None = None,
                 silence_s: float = 5.0):
        super().__init__(f"capture-{spec.name}")
        self.spec, self.out, self.clock, self.opener = spec, out, clock, opener
        self.sampler = FrameSampler(sample_fps)
        self.backoff, self.silence_s = backoff, silence_s
        self.counters = counters if counters is not None else SourceCounters()
        self.status = "starting"
        self.last_error: str | None = None
        self.waiting_for: str | None = None  # while waiting: what for
        self.heartbeat = clock()
        self.last_frame_at: float | None = None  # service clock: the last usable frame
        self.opened_at: float | None = None
        self._skipped_since_frame = 0
        # The source's own stamps of the newest sampled frames (ROS image topics), by service time.
        self.source_stamps: deque[tuple[float, object]] = deque(maxlen=256)

    # The counts, read where they were read before (the runtime's snapshot, tests).
    @property
    def frames_read(self) -> int:
        return self.counters.frames_read

    @property
    def frames_sampled(self) -> int:
        return self.counters.frames_sampled

    @property
    def frames_skipped(self) -> int:
        return self.counters.frames_skipped

    @property
    def reconnects(self) -> int:
        return self.counters.reconnects

    def run(self) -> None:
        delays = backoff_delays(*self.backoff)
        while not self.stopping:
            self.heartbeat = self.clock()
            source = self.opener(self.spec)
            if self.stopping:
                source.release()
                break
            if not source.is_open():
                source.release()
                self._failed(source.failure or f"cannot open {self.spec.kind.value} {self.spec.shown}", next(delays))
                continue
            # A file looping, or a source back after a failure: said once at INFO, not on every loop.
            first_or_recovered = self.opened_at is None or self.status == "reconnecting"
            self.status, self.opened_at, self.last_frame_at = "open", self.clock(), None
            log.log(logging.INFO if first_or_recovered else logging.DEBUG, "source %s opened (%s)", self.spec.name,
                    self.spec.shown)
            read = self._read(source)
            reason = source.failure or f"{self.spec.kind.value} {self.spec.shown} stopped delivering frames"
            source.release()
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
        self.status, self.last_error, self.waiting_for = "reconnecting", reason, None
        self.counters.reconnects += 1
        log.warning("source %s: %s; retrying in %.1f s", self.spec.name, reason, delay)
        end = self.clock() + delay
        while not self.stopping and self.clock() < end:  # in slices, so the heartbeat goes on
            self.heartbeat = self.clock()
            self.pause(min(POLL_S, end - self.clock()))

    def source_stamp(self, t: float) -> object | None:
        """The source's own stamp of the sampled frame captured at service time `t` (as events round it, to the
        millisecond), or None."""
        for frame_t, stamp in reversed(list(self.source_stamps)):  # a copy: the capture appends meanwhile
            if abs(frame_t - t) <= 0.0005 + 1e-9:
                return stamp
        return None

    def _read(self, source: FrameSource) -> int:
        """Frames until the source ends or the thread is stopped; how many were taken."""
        fps = source.frame_rate()
        period = 1.0 / fps if fps > 0 else 0.0
        read = 0
        started = self.clock()
        while not self.stopping:
            grabbed = source.grab()
            now = self.heartbeat = self.clock()
            if self.stopping:
                break  # replaced while inside grab(): nothing more of this source is ours to count
            if grabbed is Grab.ENDED:
                return read
            if grabbed is Grab.IDLE:
                self._quiet(source, now)
                continue
            read += 1
            self.counters.frames_read += 1
            if grabbed is Grab.SKIPPED:
                self._skipped(source.last_skip)
                self._quiet(source, now)
                continue
            if self.sampler.accept(now):
                image = source.retrieve()
                if image is None:
                    self._skipped(source.last_skip)
                    self._quiet(source, now)
                    continue
                self._delivering(now)
                self.counters.frames_sampled += 1
                stamp = source.stamp()
                if stamp is not None:
                    self.source_stamps.append((now, stamp))
                self.out.put(CapturedFrame(self.spec.name, self.counters.frames_read, now, image))
            else:
                self._delivering(now)  # taken and checked; only its decoding is saved
            if period:
                # Play a file at its own rate: wait for this frame's slot (interruptible by stop()).
                wait = started + read * period - self.clock()
                if wait > 0:
                    self.pause(wait)
        return read

    def _delivering(self, now: float) -> None:
        self.last_frame_at, self._skipped_since_frame = now, 0
        self.last_error = None  # delivering again: an old failure is history, not the current state
        if self.status == "waiting":
            log.info("source %s: frames again after waiting (%s)", self.spec.name, self.waiting_for)
        self.status, self.waiting_for = "open", None

    def _quiet(self, source: FrameSource, now: float) -> None:
        """No usable frame this turn: `waiting` once the source says what it waits for, or after silence_s; while
        waiting, a new reason of the source's (its publisher went away, or came back) is said once."""
        reason = source.waiting()
        if self.status == "waiting":
            if reason is not None and reason != self.waiting_for:
                self.waiting_for = reason
                log.warning("source %s waiting: %s", self.spec.name, reason)
            return
        since = self.last_frame_at if self.last_frame_at is not None else self.opened_at
        if reason is None and now - since < self.silence_s:
            return
        if reason is None:
            usable = "usable frame" if self.counters.frames_read else "frame"
            reason = f"no {usable} from {self.spec.kind.value} {self.spec.shown} for {self.silence_s:g} s"
        self.status, self.waiting_for = "waiting", reason
        if self._skipped_since_frame:  # messages came, none of them usable: that is the source's error
            self.last_error = self.counters.last_skip
        log.warning("source %s waiting: %s", self.spec.name, reason)

    def _skipped(self, skip: Skip | None) -> None:
        skip = skip or Skip("broken", "a frame that could not be used")
        counts = self.counters
        counts.skipped[skip.reason] += 1
        counts.last_skip = skip.detail
        self._skipped_since_frame += 1
        # The first of each reason at WARNING, the rest at DEBUG: a broken publisher must not flood the log.
        log.log(logging.WARNING if counts.skipped[skip.reason] == 1 else logging.DEBUG,
                "source %s: skipped %s (%s; %d skipped so far)", self.spec.name, skip.detail, skip.reason,
                counts.frames_skipped)
