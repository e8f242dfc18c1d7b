"""Sampling a frame stream to a fixed rate, so a 16-frame window spans the same time whatever the source fps."""

from __future__ import annotations


class FrameSampler:
    """Keeps the first frame at or after each tick of a 1/sample_fps clock. A source slower than sample_fps keeps
    every frame."""

    def __init__(self, sample_fps: float):
        if sample_fps <= 0:
            raise ValueError(f"sample_fps must be positive, got {sample_fps}")
        self.period = 1.0 / sample_fps
        self._next: float | None = None

    def accept(self, t: float) -> bool:
        if self._next is None:
            self._next = t
        # A small tolerance so 25 fps timestamps rounded by the container do not skip a tick.
        if t + 1e-6 < self._next:
            return False
        # Advance past t; skipping whole periods after a gap keeps the clock from bursting to catch up.
        while self._next <= t + 1e-6:
            self._next += self.period
        return True
