"""From a method name, a recipe and a backbone to everything one training step needs (`build_training`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.mixing import BatchMixing, mix_batch, mixing_from_recipe
from models.recipes import Recipe
from models.training.objective import TrainingObjective
from models.training.optim import build_optimizer, group_lrs, scale_lrs
from models.training.schedule import Plateau, lr_factor


@dataclass
class Training:
    """A method ready to train: `model` (built for the recipe), `objective` (its loss; what DDP wraps),
    `optimizer` (the recipe's named groups, each group's `initial_lr` the recipe's rate), `mixing` (the recipe's
    mixup/FMix or None), `plateau` (the plateau schedule's state or None) and `factory` (the create_model keyword
    arguments that rebuild this architecture, saved in checkpoints)."""

    method: str
    recipe: Recipe
    model: torch.nn.Module
    objective: TrainingObjective
    optimizer: torch.optim.Optimizer
    mixing: BatchMixing | None
    plateau: Plateau | None
    factory: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.model.bundle_cfg["labels"])

    def targets(self, faces: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator | None = None,
                kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
        """(faces, class-probability targets, "mixup" | "fmix" | "none"): the batch as the recipe mixes it.
        `kind` forces one ("mixup"/"fmix"/"none") instead of the recipe's per-batch draw (tests)."""
        mixing = self.mixing
        if kind is not None and mixing is not None:
            mixing = BatchMixing(mixup_p=1.0 if kind == "mixup" else 0.0, fmix_p=1.0 if kind == "fmix" else 0.0,
                                 mixup_alpha=mixing.mixup_alpha, fmix_alpha=mixing.fmix_alpha,
                                 fmix_decay_power=mixing.fmix_decay_power)
        return mix_batch(faces, labels, self.num_classes, mixing, rng)

    def set_lr(self, step: int, steps_per_epoch: int) -> None:
        """Every group's rate at optimiser step `step`: the recipe's rate x warm-up/schedule x plateau scale."""
        factor = lr_factor(step, steps_per_epoch, self.recipe)
        scale_lrs(self.optimizer, factor * (self.plateau.scale if self.plateau else 1.0))

    def lrs(self) -> dict[str, float]:
        return group_lrs(self.optimizer)


def model_factory(method: str, recipe: Recipe, *, dataset: str | None = "dfew", image_size: int | None = None,
                  clip_checkpoint: str | Path | None = None, quick_gelu: bool | None = None,
                  clip_tag: str | None = None) -> dict[str, Any]:
    """create_model keyword arguments for the recipe: its backbone, frame count, input size and loss constants
    (which DK-CLIP's NRM threshold and OUS's switch need at build time), and how the CLIP file's activation is
    settled (models/clip_weights.py)."""
    factory: dict[str, Any] = {"dataset": dataset, "num_frames": recipe.num_frames, **recipe.loss_constants()}
    if recipe.backbone != "mini-xception":
        factory |= {"backbone": recipe.backbone, "image_size": image_size or recipe.image_size}
        factory |= {k: v for k, v in (("quick_gelu", quick_gelu), ("clip_tag", clip_tag)) if v is not None}
    elif (image_size or recipe.image_size) != 64:
        raise ValueError("the baseline (mini-xception) reads 64 x 64 grey frames: image_size must be 64")
    if clip_checkpoint is not None:
        factory["checkpoint"] = str(clip_checkpoint)
    return factory


def build_training(method: str, recipe: Recipe, *, backbone: str | None = None, dataset: str | None = "dfew",
                   image_size: int | None = None, clip_checkpoint: str | Path | None = None,
                   quick_gelu: bool | None = None, clip_tag: str | None = None,
                   device: str | torch.device = "cpu") -> Training:
    """The model, optimiser and objective that `python -m models.train` trains, for one recipe.

    `backbone` overrides the recipe's (e.g. "tiny" in tests and benches), `image_size` its input size, and
    `clip_checkpoint` gives local CLIP weights (None: random); `quick_gelu` / `clip_tag` settle their activation
    where the file is not one of OpenAI's (models/clip_weights.py). The model is built for the recipe's frame count,
    input size and loss constants; the optimiser has one group per named `lr_groups` entry (plus `base`), each at
    the recipe's rate; the objective applies the recipe's label smoothing. Raises ValueError for a recipe the
    method cannot train (mixing a scene-aware model, lr_groups that match nothing)."""
    from models.registry import create_model

    if backbone is not None and backbone != recipe.backbone:
        recipe = recipe.model_copy(update={"backbone": backbone})
    factory = model_factory(method, recipe, dataset=dataset, image_size=image_size, clip_checkpoint=clip_checkpoint,
                            quick_gelu=quick_gelu, clip_tag=clip_tag)
    model = create_model(method, **factory).to(device)
    # A saved state dict replaces the CLIP file when a checkpoint is loaded; the activation the file settled stays.
    factory.pop("checkpoint", None)
    factory.pop("clip_tag", None)
    if hasattr(model, "backbone"):
        factory["quick_gelu"] = model.backbone.quick_gelu
    mixing = mixing_from_recipe(recipe)
    if mixing is not None and model.bundle_cfg.get("needs_scene"):
        # mixup/FMix of the faces alone would pair a blended face with one clip's scene
        raise ValueError(f"{method} is scene-aware: its recipe cannot mix batches (mixup and fmix must be 0)")
    if model.bundle_cfg["num_frames"] != recipe.num_frames:
        raise ValueError(f"{method} was built for {model.bundle_cfg['num_frames']} frames, the recipe says "
                         f"{recipe.num_frames}")
    optimizer = build_optimizer(model, recipe)
    training = Training(method, recipe, model, TrainingObjective(model, recipe.label_smoothing), optimizer, mixing,
                        Plateau.from_recipe(recipe), factory)
    return training
