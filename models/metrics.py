"""DFER metrics as the papers report them (pure numpy): UAR = mean of per-class recalls (unweighted average
recall), WAR = overall accuracy (weighted average recall), per-class recall, the confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets, int), np.asarray(predictions, int)), 1)
    return matrix


def recall_per_class(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class absent from the targets (it is left out of UAR)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def uar_war(matrix: np.ndarray) -> tuple[float, float]:
    recalls = recall_per_class(matrix)
    uar = float(np.nanmean(recalls)) if np.isfinite(recalls).any() else 0.0
    war = float(np.trace(matrix) / matrix.sum()) if matrix.sum() else 0.0
    return uar, war


def summarise(targets: np.ndarray, predictions: np.ndarray, labels: list[str]) -> dict:
    matrix = confusion_matrix(targets, predictions, len(labels))
    uar, war = uar_war(matrix)
    recalls = recall_per_class(matrix)
    return {"uar": uar, "war": war, "samples": int(matrix.sum()),
            "recall": {label: (None if np.isnan(r) else float(r)) for label, r in zip(labels, recalls)},
            "confusion": matrix.tolist(), "labels": list(labels)}


def mean_over_folds(results: list[dict]) -> dict:
    """The papers' headline numbers: UAR and WAR averaged over the folds (DFEW and MAFW have 5)."""
    if not results:
        raise ValueError("no fold results to aggregate")
    labels = results[0]["labels"]
    if any(r["labels"] != labels for r in results):
        raise ValueError("fold results have different label sets")
    folds = [r.get("fold") for r in results]
    return {"folds": folds, "uar": float(np.mean([r["uar"] for r in results])),
            "war": float(np.mean([r["war"] for r in results])),
            "uar_std": float(np.std([r["uar"] for r in results])), "war_std": float(np.std([r["war"] for r in results])),
            "per_fold": [{"fold": r.get("fold"), "uar": r["uar"], "war": r["war"]} for r in results]}
