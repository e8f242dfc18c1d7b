"""Per-track smoothing so the label does not flicker from window to window (pure functions + a small store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

SmoothingName = Literal["none", "ema", "hysteresis"]


def ema(previous: np.ndarray | None, new: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average of probability vectors; alpha is the weight of the new window."""
    return new if previous is None else alpha * new + (1 - alpha) * previous


def hysteresis_label(current: int | None, probs: np.ndarray, margin: float) -> int:
    """Keep the current label unless another one beats it by more than `margin` probability."""
    best = int(np.argmax(probs))
    if current is None or best == current:
        return best
    return best if probs[best] - probs[current] > margin else current


@dataclass
class _TrackState:
    probs: np.ndarray | None = None
    label: int | None = None


class Smoother:
    """none: raw window output; ema: averaged probabilities, label = argmax; hysteresis: averaged probabilities and
    a label that only changes when another label leads by `margin`."""

    def __init__(self, method: SmoothingName = "ema", alpha: float = 0.5, margin: float = 0.15,
                 max_tracks: int = 1024):
        from collections import OrderedDict

        self.method, self.alpha, self.margin, self.max_tracks = method, alpha, margin, max_tracks
        # Least recently updated tracks are forgotten first, so a service running for weeks stays bounded.
        self._tracks: OrderedDict[tuple[str, int], _TrackState] = OrderedDict()

    def update(self, source: str, track_id: int, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """Label index and probabilities to report for this window."""
        if self.method == "none":
            return int(np.argmax(probs)), probs
        state = self._tracks.setdefault((source, track_id), _TrackState())
        self._tracks.move_to_end((source, track_id))
        while len(self._tracks) > self.max_tracks:
            self._tracks.popitem(last=False)
        state.probs = ema(state.probs, probs, self.alpha)
        if self.method == "hysteresis":
            state.label = hysteresis_label(state.label, state.probs, self.margin)
        else:
            state.label = int(np.argmax(state.probs))
        return state.label, state.probs

    def forget(self, source: str, track_id: int) -> None:
        """Drop an ended track's state (the live runtime calls this once none of its windows waits)."""
        self._tracks.pop((source, track_id), None)

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._tracks
