"""Learning-rate schedules as the recipes state them (in epochs, applied per optimiser step): linear warm-up, then
constant, cosine down to `min_lr`, multistep, or a plateau schedule that reacts to a named metric once per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.recipes import Recipe


def lr_factor(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Multiplier of every group's recipe rate at an optimiser step (pure)."""
    epoch = step / max(1, steps_per_epoch)
    warmup = recipe.warmup_epochs
    if warmup and epoch < warmup:
        return (step + 1) / (warmup * steps_per_epoch)
    if recipe.schedule == "cosine":
        total = max(recipe.epochs - warmup, 1e-9)
        progress = min(1.0, (epoch - warmup) / total)
        floor = (recipe.min_lr / recipe.lr) if recipe.min_lr else 0.0  # cosine down to min_lr, not to zero
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if recipe.schedule == "multistep":
        return recipe.gamma ** sum(epoch >= m for m in recipe.milestones)
    return 1.0  # constant; plateau scales per epoch (Plateau.scale)


@dataclass
class Plateau:
    """The `plateau` schedule: multiply the rates by `factor` once the monitored metric has not improved for
    `patience` consecutive epochs (the OUS paper: "didn't decrease for five consecutive epochs"); `exhausted` once
    the largest rate is below `stop_lr`. Lower is better for a loss, higher for UAR/WAR."""

    monitor: str
    factor: float
    patience: int
    stop_lr: float
    scale: float = 1.0
    best: float | None = None
    waited: int = 0

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> "Plateau | None":
        p = recipe.plateau
        return cls(p.monitor, p.factor, p.patience, p.stop_lr) if p is not None else None

    def improved(self, value: float) -> bool:
        if math.isnan(value):  # a diverged epoch counts as no improvement
            return False
        if self.best is None:
            return True
        return value < self.best if self.monitor.endswith("loss") else value > self.best

    def step(self, value: float) -> None:
        if self.improved(value):
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.scale *= self.factor
            self.waited = 0

    def exhausted(self, recipe: Recipe) -> bool:
        return max(recipe.group_lrs().values()) * self.scale < self.stop_lr

    def state(self) -> dict:
        return {"scale": self.scale, "best": self.best, "waited": self.waited}

    def load(self, state: dict) -> None:
        self.scale, self.best, self.waited = state["scale"], state["best"], state["waited"]
