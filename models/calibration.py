"""Calibrated confidence (pure numpy): temperature scaling and the expected calibration error.

Temperature scaling (Guo, Pleiss, Sun and Weinberger, ICML 2017, "On Calibration of Modern Neural Networks") divides
the logits by one scalar T before the softmax, T fitted by minimising the negative log-likelihood of held-out labels;
argmax, hence every label and its UAR/WAR, is unchanged. The NLL is convex in 1/T, so a golden-section search over
1/T finds its minimum. ECE (Naeini et al. 2015, as Guo et al. compute it): the samples binned by confidence (15
equal-width bins), sum over bins of |accuracy - mean confidence| weighted by the bin's share of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15
# 1/T searched in [1/20, 1/0.05]: a model 20 times too sure or too shy is the widest we fit.
INVERSE_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `targets` (class indices) under softmax(logits / temperature)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(targets, int)]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, iterations: int = 100) -> float:
    """The T minimising nll(logits / T); 1.0 for an empty set."""
    logits, targets = np.asarray(logits, np.float64), np.asarray(targets, int)
    if len(targets) == 0:
        return 1.0
    ratio = (np.sqrt(5) - 1) / 2
    lo, hi = INVERSE_RANGE
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, targets, 1 / a), nll(logits, targets, 1 / b)
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, targets, 1 / a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, targets, 1 / b)
    return float(1 / ((lo + hi) / 2))


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: lower edge, mean confidence, accuracy and count (bins without samples: NaN, 0)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return 0.0
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((gaps * self.counts[filled]).sum() / total)


def reliability(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    probs, targets = np.asarray(probs, np.float64), np.asarray(targets, int)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == targets) if len(probs) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, confidence, bins) / counts
        accuracy = np.bincount(which, correct.astype(float), bins) / counts
    return Reliability(edges[:-1], mean_conf, accuracy, counts)


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    return reliability(probs, targets, bins).ece


def calibration_summary(logits: np.ndarray, targets: np.ndarray, fitted_on: str,
                        temperature: float | None = None) -> dict:
    """Fit T on (logits, targets) unless given, and the ECE there before and after: the fields of bundle.json's
    `calibration` (service.bundle.Calibration)."""
    t = fit_temperature(logits, targets) if temperature is None else temperature
    return {"temperature": round(t, 4), "fitted_on": fitted_on, "samples": int(len(targets)),
            "ece_before": round(expected_calibration_error(softmax(logits), targets), 4),
            "ece_after": round(expected_calibration_error(softmax(logits, t), targets), 4)}
