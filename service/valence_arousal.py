"""Valence and arousal of an emotion event (pure): the model's own, or, for a model with only categories, the
probability-weighted mean of each category's published valence/arousal coordinates.

The default coordinates are the pleasure and arousal of Russell & Mehrabian (1977), "Evidence for a three-factor
theory of emotions", J. Research in Personality 11:273-294, Table 1 (151 emotion terms rated on scales from -1 to
1); the term used for each label is named beside it (docs/ROS.md). They are the `valence_arousal` setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

VaSource = Literal["model", "categories"]

# label -> (valence, arousal); Russell & Mehrabian (1977)'s term in the comment. "neutral" is the scales' origin.
CATEGORY_VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "happy": (0.81, 0.51),  # happy
    "sad": (-0.63, -0.27),  # sad
    "angry": (-0.51, 0.59),  # angry
    "surprise": (0.40, 0.67),  # surprised
    "disgust": (-0.60, 0.35),  # disgusted
    "fear": (-0.64, 0.60),  # fearful
    "neutral": (0.0, 0.0),  # the origin of both scales
    "contempt": (-0.23, 0.31),  # contempt
    "anxiety": (0.01, 0.59),  # anxious
    "helplessness": (-0.71, 0.42),  # helpless
    "disappointment": (-0.61, -0.15),  # discouraged (the table has no "disappointed")
}


@dataclass(frozen=True)
class ValenceArousal:
    valence: float  # -1 (unpleasant) .. 1 (pleasant)
    arousal: float  # -1 (calm) .. 1 (excited)
    source: VaSource


def valence_arousal(probs: Sequence[float] | np.ndarray, labels: Sequence[str],
                    table: Mapping[str, tuple[float, float]] = CATEGORY_VALENCE_AROUSAL,
                    model_output: Sequence[float] | None = None) -> ValenceArousal | None:
    """The model's (valence, arousal) when it has them (a bundle may declare such an output; see Contract 1), else
    the mean of the table's coordinates weighted by `probs` over the labels the table knows (renormalised); None
    when it knows none of them."""
    if model_output is not None:
        valence, arousal = (float(np.clip(v, -1.0, 1.0)) for v in model_output)
        return ValenceArousal(round(valence, 4), round(arousal, 4), "model")
    known = [(float(p), table[label]) for label, p in zip(labels, probs) if label in table]
    mass = sum(p for p, _ in known)
    if not known or mass <= 0:
        return None
    valence = sum(p * va[0] for p, va in known) / mass
    arousal = sum(p * va[1] for p, va in known) / mass
    return ValenceArousal(round(valence, 4), round(arousal, 4), "categories")
