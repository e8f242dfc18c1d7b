"""Per-stage timing: how long each stage of the pipeline took, in total and per call."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
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

    def add(self, stage: str, seconds: float) -> None:
        stats = self.stages.setdefault(stage, StageStats())
        stats.calls += 1
        stats.seconds += seconds

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
