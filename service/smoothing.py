"""Per-track smoothing so the label does not flicker from window to window (pure functions + a small store)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

SmoothingName = Literal["none", "ema", "hysteresis", "switch"]


def ema(previous: np.ndarray | None, new: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average of probability vectors; alpha is the weight of the new window."""
    return new if previous is None else alpha * new + (1 - alpha) * previous


def hysteresis_label(current: int | None, probs: np.ndarray, margin: float) -> int:
    """Keep the current label unless another one beats it by more than `margin` probability."""
    best = int(np.argmax(probs))
    if current is None or best == current:
        return best
    return best if probs[best] - probs[current] > margin else current


def time_alpha(dt: float, time_constant_s: float) -> float:
    """Weight of a new window in an average that forgets with `time_constant_s`, whatever the windows' rate."""
    return 1.0 if time_constant_s <= 0 else 1.0 - math.exp(-max(dt, 0.0) / time_constant_s)


@dataclass
class _TrackState:
    probs: np.ndarray | None = None
    label: int | None = None
    t: float | None = None  # the newest window's end (switch)
    challenger: int | None = None  # the label leading the current one (switch)
    leading_since: float = 0.0


class Smoother:
    """none: raw window output; ema: averaged probabilities, label = argmax; hysteresis: averaged probabilities and
    a label that only changes when another label leads by `margin`; switch: probabilities averaged over time
    (`average_s` time constant) and a label that changes once another one has led it by `margin` for `switch_s`
    seconds (a switching cost in time, not in windows, so it holds at any hop or frame rate)."""

    def __init__(self, method: SmoothingName = "ema", alpha: float = 0.5, margin: float = 0.15,
                 max_tracks: int = 1024, average_s: float = 0.25, switch_s: float = 0.5):
        from collections import OrderedDict

        self.method, self.alpha, self.margin, self.max_tracks = method, alpha, margin, max_tracks
        self.average_s, self.switch_s = average_s, switch_s
        # Least recently updated tracks are forgotten first, so a service running for weeks stays bounded.
        self._tracks: OrderedDict[tuple[str, int], _TrackState] = OrderedDict()

    def update(self, source: str, track_id: int, probs: np.ndarray, t: float = 0.0) -> tuple[int, np.ndarray]:
        """Label index and probabilities to report for this window, whose last frame is at `t` seconds."""
        if self.method == "none":
            return int(np.argmax(probs)), probs
        state = self._tracks.setdefault((source, track_id), _TrackState())
        self._tracks.move_to_end((source, track_id))
        while len(self._tracks) > self.max_tracks:
            self._tracks.popitem(last=False)
        if self.method == "switch":
            self._switch(state, probs, t)
            return state.label, state.probs
        state.probs = ema(state.probs, probs, self.alpha)
        if self.method == "hysteresis":
            state.label = hysteresis_label(state.label, state.probs, self.margin)
        else:
            state.label = int(np.argmax(state.probs))
        return state.label, state.probs

    def _switch(self, state: _TrackState, probs: np.ndarray, t: float) -> None:
        alpha = 1.0 if state.t is None else time_alpha(t - state.t, self.average_s)
        state.probs, state.t = ema(state.probs, probs, alpha), t
        best = int(np.argmax(state.probs))
        if state.label is None:
            state.label = best
            return
        if best == state.label or state.probs[best] - state.probs[state.label] <= self.margin:
            state.challenger = None
            return
        if state.challenger != best:
            state.challenger, state.leading_since = best, t
        if t - state.leading_since >= self.switch_s:
            state.label, state.challenger = best, None

    def forget(self, source: str, track_id: int) -> None:
        """Drop an ended track's state (the live runtime calls this once none of its windows waits)."""
        self._tracks.pop((source, track_id), None)

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._tracks
