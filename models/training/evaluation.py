"""Evaluation during training: test-set predictions (UAR/WAR) and the validation split's loss and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.metrics import summarise
from models.training.data import unpack
from models.training.distributed import Dist


@torch.no_grad()
def predict_logits(model, loader, device: str, ddp: Dist, progress: bool, desc: str = "test"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(targets, logits [N, C] float32) over the whole loader, gathered from every rank."""
    model.eval()
    targets, outputs = [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        faces, labels, scene = unpack(batch)
        faces = faces.to(device, non_blocking=True)
        logits = model(faces) if scene is None else model(faces, scene.to(device, non_blocking=True))
        outputs.append(logits.float().cpu().numpy())
        targets.append(np.asarray(labels))
    local = (np.concatenate(targets) if targets else np.zeros(0, int),
             np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32))
    gathered = [g for g in ddp.gather(local) if len(g[0])]
    if not gathered:
        return local
    return np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])


def predict(model, loader, device: str, ddp: Dist, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(targets, predictions) over the whole loader, gathered from every rank."""
    targets, logits = predict_logits(model, loader, device, ddp, progress)
    return targets, (logits.argmax(1) if len(logits) else np.zeros(0, int))


@torch.no_grad()
def validate(training, loader, device: str, ddp: Dist, autocast, progress: bool) -> dict[str, Any]:
    """The objective (with the recipe's label smoothing, no mixing) and UAR/WAR on the validation split:
    {"val_loss", "val_uar", "val_war"}, over every rank's share. A model naming a `validation_term` (OUS) is
    validated on that term of its objective rather than on the total."""
    training.model.eval()
    term = getattr(training.model, "validation_term", None)
    total, count, targets, predictions = 0.0, 0, [], []
    for batch in tqdm(loader, desc="validation", leave=False, disable=not progress):
        faces, labels, scene = unpack(batch)
        faces, labels = faces.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        scene = scene.to(device, non_blocking=True) if scene is not None else None
        _, probabilities, _ = training.targets(faces, labels, kind="none")
        with autocast():
            loss, terms, logits = training.objective(faces, probabilities, scene)
        total += float(terms[term] if term else loss) * len(labels)
        count += len(labels)
        targets.append(labels.cpu().numpy())
        predictions.append(logits.argmax(1).cpu().numpy())
    gathered = ddp.gather((total, count, np.concatenate(targets) if targets else np.zeros(0, int),
                           np.concatenate(predictions) if predictions else np.zeros(0, int)))
    total, count = sum(g[0] for g in gathered), sum(g[1] for g in gathered)
    metrics = summarise(np.concatenate([g[2] for g in gathered]), np.concatenate([g[3] for g in gathered]),
                        training.model.bundle_cfg["labels"])
    return {"val_loss": total / max(count, 1), "val_uar": metrics["uar"], "val_war": metrics["war"]}
