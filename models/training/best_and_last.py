"""What a run keeps: last.pt every epoch (with everything `--resume` needs) and best.pt, the epoch that is best
by the recipe's `select_by` (the lowest validation loss for OUS; the best test UAR where the papers select on it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.checkpoint import read_checkpoint, save_checkpoint
from models.fingerprint import model_fingerprint
from models.training.distributed import rng_state, set_rng_state


@dataclass
class Selection:
    """Tracks the best value of `metric` (lower is better for a loss, higher for UAR/WAR). The record keys are
    `uar`/`war` for the test set and `val_loss`/`val_uar`/`val_war` for the validation split."""

    metric: str
    best: float | None = None

    @property
    def key(self) -> str:
        return self.metric.removeprefix("test_")

    def better(self, record: dict[str, Any]) -> bool:
        value = record.get(self.key)
        if value is None or math.isnan(value):  # a NaN epoch is never the best, nor blocks a later one
            return False
        if self.best is None or (value < self.best if self.metric.endswith("loss") else value > self.best):
            self.best = value
            return True
        return False


def activation_of(model) -> str | None:
    """"quick_gelu (how it was decided)" for a CLIP method, None for a model without a CLIP backbone."""
    activation = getattr(getattr(model, "backbone", None), "activation", None)
    return activation.describe() if activation is not None else None


def save_epoch(out: Path, training, *, dataset: str, fold: int | None, epoch: int, step: int, scaler,
               record: dict[str, Any], selection: Selection, is_best: bool,
               crop: dict[str, Any] | None = None) -> None:
    """last.pt (resumable) and, when this epoch is the best so far, best.pt. `crop`: how the training face crops
    were made (models.prepare's crop.json), which export declares in the bundle."""
    metrics = {k: record[k] for k in ("uar", "war", "val_loss", "val_uar", "val_war") if k in record}
    meta = {"dataset": dataset, "fold": fold, "epoch": epoch + 1, "recipe": training.recipe.model_dump(mode="json"),
            "select_by": selection.metric, "metrics": metrics, "crop": crop,
            "activation": activation_of(training.model)}
    resume = {"optimizer": training.optimizer.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
              "step": step, "best": selection.best, "rng": rng_state(),
              "plateau": training.plateau.state() if training.plateau else None}
    fingerprint = model_fingerprint(training.model)  # one forward for both files
    save_checkpoint(out / "last.pt", training.model, name=training.method, factory=training.factory,
                    training=meta, resume=resume, fingerprint=fingerprint)
    if is_best:
        save_checkpoint(out / "best.pt", training.model, name=training.method, factory=training.factory,
                        training=meta, fingerprint=fingerprint)


def calibrate_best(out: Path, training, loader, device: str, ddp, progress: bool = False) -> dict[str, Any] | None:
    """Temperature scaling at the end of training: best.pt's model on the validation split, T fitted there
    (models/calibration.py) and written into best.pt's training metadata (`calibration`), which export carries into
    bundle.json. Every rank runs the split; the main process writes. None when there is no best.pt."""
    from models.calibration import calibration_summary
    from models.training.evaluation import predict_logits

    path = out / "best.pt"
    ddp.gather(None)  # best.pt is complete before any rank reads it
    if not path.is_file():
        return None
    payload = read_checkpoint(path)
    training.model.load_state_dict(payload["state_dict"])
    targets, logits = predict_logits(training.model, loader, device, ddp, progress, desc="calibration")
    if len(targets) == 0:
        return None
    summary = calibration_summary(logits, targets, f"the validation split of {payload['training'].get('dataset')} "
                                                   f"fold {payload['training'].get('fold')}")
    if ddp.main:
        import torch

        payload["training"]["calibration"] = summary
        tmp = path.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
    return summary


def resume(out: Path, training, scaler, selection: Selection) -> tuple[int, int]:
    """Load OUT/last.pt into the run; returns (first epoch to train, optimiser step)."""
    payload = read_checkpoint(out / "last.pt")
    saved = (payload.get("training") or {}).get("recipe") or {}
    current = training.recipe.model_dump(mode="json")
    # only the epoch budget may grow on resume; another recipe would silently continue a different run
    changed = sorted(k for k in current if k != "epochs" and k in saved and saved[k] != current[k])
    if changed:
        raise ValueError(f"{out / 'last.pt'} was trained with another recipe ({', '.join(changed)} differ): resume "
                         "with the same --recipe, --backbone, --batch-size and --lr (only --epochs may change)")
    training.model.load_state_dict(payload["state_dict"])
    state = payload["resume"]
    training.optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    selection.best = state["best"]
    if training.plateau is not None and state.get("plateau"):
        training.plateau.load(state["plateau"])
    set_rng_state(state["rng"])
    return state["epoch"] + 1, state["step"]
