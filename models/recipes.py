"""Training recipes as data: models/configs/train/<method>.json holds each paper's optimiser, learning rate,
schedule, epochs, batch size, augmentation and loss weights (`defaults`, then `datasets[<dataset>]` on top, then
command-line overrides on top of both)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

RECIPE_DIR = Path(__file__).parent / "configs" / "train"


def load_recipe(method: str, dataset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    path = RECIPE_DIR / f"{method}.json"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPE_DIR.glob("*.json"))
        raise ValueError(f"no training recipe for {method!r} ({path}); recipes: {', '.join(known)}")
    data = json.loads(path.read_text())
    recipe = copy.deepcopy(data["defaults"])
    recipe.update(data.get("datasets", {}).get(dataset, {}))
    recipe.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return recipe


def lr_factor(step: int, steps_per_epoch: int, recipe: dict[str, Any]) -> float:
    """Learning-rate multiplier at an optimiser step (pure): linear warm-up, then the recipe's schedule, which is
    stated in epochs (as the papers state it) and applied per step."""
    import math

    epoch = step / max(1, steps_per_epoch)
    warmup = recipe.get("warmup_epochs", 0) or 0
    if warmup and epoch < warmup:
        return (step + 1) / (warmup * steps_per_epoch)
    schedule = recipe.get("schedule", "constant")
    if schedule == "cosine":
        total = max(recipe["epochs"] - warmup, 1e-9)
        progress = min(1.0, (epoch - warmup) / total)
        floor = (recipe.get("min_lr") or 0.0) / recipe["lr"]  # cosine down to min_lr, not to zero
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "multistep":
        return recipe.get("gamma", 0.1) ** sum(epoch >= m for m in recipe.get("milestones", []))
    if schedule == "step":
        size = recipe.get("step_size") or (recipe.get("milestones") or [recipe["epochs"]])[0]
        return recipe.get("gamma", 0.1) ** int(epoch // size)
    if schedule in ("constant", "plateau"):  # plateau changes the rate per epoch, in the training loop
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r}")
