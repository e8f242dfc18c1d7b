"""Which frames of a clip make the model's 16: the segment-based sampling of Former-DFER that DFER-CLIP and the
CLIP methods after it reuse ("fixed 16-frame sequences ... followed the sampling strategy described in related
works", DuSE IV-A.2).

The clip is cut into `num_segments` equal segments. Training takes one random frame from each segment (a different
but temporally ordered and evenly spread choice every epoch); testing takes each segment's middle frame, so the
same clip always gives the same frames. A clip with fewer frames than segments is used whole, its last frame
repeated to fill up ("edge" padding, as those code bases do).
"""

from __future__ import annotations

import numpy as np

NUM_FRAMES = 16


def _padded(num_frames: int, num_segments: int) -> np.ndarray:
    return np.pad(np.arange(num_frames), (0, num_segments - num_frames), mode="edge")


def train_indices(num_frames: int, num_segments: int = NUM_FRAMES,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """One random frame per segment (segments of num_frames // num_segments frames; the remainder at the end is
    never drawn, as in the reference code)."""
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    if num_frames < num_segments:
        return _padded(num_frames, num_segments)
    rng = rng if rng is not None else np.random.default_rng()
    segment = num_frames // num_segments
    return np.arange(num_segments) * segment + rng.integers(0, segment, size=num_segments)


def eval_indices(num_frames: int, num_segments: int = NUM_FRAMES) -> np.ndarray:
    """The middle frame of each of num_segments equal segments; deterministic."""
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    if num_frames <= num_segments:
        return _padded(num_frames, num_segments)
    tick = num_frames / num_segments
    return np.array([int(tick / 2 + tick * i) for i in range(num_segments)])


def consecutive_train_indices(num_frames: int, length: int = NUM_FRAMES,
                              rng: np.random.Generator | None = None) -> np.ndarray:
    """`length` consecutive frames from a random start (PE-CLIP's "16 consecutive frames"); a shorter clip is used
    whole, its last frame repeated."""
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    if num_frames <= length:
        return _padded(num_frames, length)
    rng = rng if rng is not None else np.random.default_rng()
    return int(rng.integers(0, num_frames - length + 1)) + np.arange(length)


def consecutive_eval_indices(num_frames: int, length: int = NUM_FRAMES) -> np.ndarray:
    """The centre run of `length` consecutive frames; deterministic."""
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    if num_frames <= length:
        return _padded(num_frames, length)
    return (num_frames - length) // 2 + np.arange(length)


SAMPLERS = {"segments": (train_indices, eval_indices),
            "consecutive": (consecutive_train_indices, consecutive_eval_indices)}
