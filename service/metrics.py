"""Per-stage timing: how long each stage of the pipeline took, in total and per call."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StageStats:
    calls: int = 0
    seconds: float = 0.0

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / self.calls if self.calls else 0.0


@dataclass
class StageTimer:
    stages: dict[str, StageStats] = field(default_factory=dict)
    # Also told of every sample (the live service feeds its Prometheus histograms from here).
    observer: Callable[[str, float], None] | None = None

    def add(self, stage: str, seconds: float) -> None:
        stats = self.stages.setdefault(stage, StageStats())
        stats.calls += 1
        stats.seconds += seconds
        if self.observer is not None:
            self.observer(stage, seconds)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def timed_iter(self, stage: str, iterable: Iterable):
        """Times each item an iterable produces (e.g. decoding a frame) as one call of the stage."""
        iterator = iter(iterable)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            self.add(stage, time.perf_counter() - start)
            yield item

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"calls": s.calls, "seconds": round(s.seconds, 4), "ms_per_call": round(s.ms_per_call, 3)}
                for name, s in self.stages.items()}


class RateMeter:
    """Events per second over a sliding window (for fps gauges); it decays to 0 when events stop."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._first: float | None = None

    def tick(self, now: float) -> None:
        self._first = now if self._first is None else self._first
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if self._first is None:
            return 0.0
        elapsed = min(self.window_s, now - self._first)  # a young meter divides by its age, not the window
        return len(self._times) / elapsed if elapsed > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
