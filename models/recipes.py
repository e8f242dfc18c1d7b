"""Training recipes as a validated schema: models/configs/train/<method>.json holds each paper's optimiser, learning
rates, schedule, epochs, batch, frames, input size, augmentation, mixing, loss constants and checkpoint selection.

A recipe file is {"method", "paper", "defaults", "datasets", "sources", "chosen"}; the resolved recipe for a
dataset is `defaults`, then `datasets[<dataset>]` on top (dict-valued fields merge one level deep), then
command-line overrides. `Recipe` validates the result: every field the trainer reads is declared here, every
declared field is read by models/training/, and an unknown or misspelt key is refused by name (`RecipeError`).
The shape is documented field by field in docs/TRAINING_RECIPES.md.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RECIPE_DIR = Path(__file__).parent / "configs" / "train"
FILE_KEYS = {"method", "paper", "defaults", "datasets", "sources", "chosen"}
DATASETS = ("dfew", "ferv39k", "mafw")


class RecipeError(ValueError):
    """A recipe file that is missing, not JSON, or does not fit the schema; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LRGroup(_Strict):
    """A named parameter group with its own learning rate: parameters whose name matches one of `params` (fnmatch
    globs; the first group with a match wins)."""
    params: list[str] = Field(min_length=1)
    lr: float = Field(gt=0, lt=1)


class Plateau(_Strict):
    """ReduceLROnPlateau as the OUS paper words it: multiply every rate by `factor` once `monitor` has not improved
    for `patience` consecutive epochs; training stops when the rate falls below `stop_lr`."""
    monitor: Literal["val_loss", "val_uar", "val_war"]
    factor: float = Field(gt=0, lt=1)
    patience: int = Field(gt=0)
    stop_lr: float = Field(ge=0)


class Validation(_Strict):
    """A held-out part of the training fold: `fraction` of its clips, stratified by label, drawn with `seed`."""
    fraction: float = Field(gt=0, lt=1)
    seed: int = 0


class Augment(_Strict):
    """Per-clip augmentation (models/data/transforms.py), one draw per clip applied to all its frames."""
    random_crop: bool  # random resized crop (area 8-100 %, aspect 3/4-4/3) to image_size; False: plain resize
    flip: bool  # horizontal flip with p = 0.5
    color_jitter: float = Field(ge=0)  # brightness factor of ColorJitter(brightness=x); 0: off
    rotation: float = Field(0.0, ge=0, le=180)  # max degrees either way; 0: off


class NoLossConstants(_Strict):
    """Plain cross-entropy on the logits: nothing to set."""


class DKCLIPLoss(_Strict):
    """Eq. 11, L = L_g + lambda (L_l + L_k); theta is the NRM threshold of eq. 9 (it also shapes the logits)."""
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    lam: float = Field(alias="lambda", ge=0)
    theta: float = Field(ge=0, le=1)


class OUSLoss(_Strict):
    """Eq. 4, L_global = w_s L_similarity + w_p L_polarity + w_c L_contrast while it exceeds alpha, L_contrast alone
    below it (sec. III-A)."""
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    alpha: float = Field(ge=0)
    similarity_weight: float = Field(alias="similarity", ge=0)
    polarity_weight: float = Field(alias="polarity", ge=0)
    contrastive_weight: float = Field(alias="contrastive", gt=0)


# Methods whose objective has constants; every other method trains plain cross-entropy and takes `"loss": {}`.
LOSS_CONSTANTS: dict[str, type[_Strict]] = {"dk_clip": DKCLIPLoss, "ous": OUSLoss}


class Recipe(_Strict):
    method: str
    backbone: str
    optimizer: Literal["sgd", "adam", "adamw"]
    # The rate of every trainable parameter no lr_groups entry claims; None where the groups claim them all
    # (PE-CLIP): a rate that reaches no parameter is refused when the optimiser is built (models/training/optim.py).
    lr: float | None = Field(None, gt=0, lt=1)
    lr_groups: dict[str, LRGroup] = {}
    momentum: float | None = Field(None, ge=0, lt=1)  # sgd only
    betas: tuple[float, float] | None = None  # adam / adamw only
    weight_decay: float = Field(ge=0)
    decay_biases_and_norms: bool  # False: biases and 1-D (norm) weights train without weight decay
    schedule: Literal["constant", "cosine", "multistep", "plateau"]
    warmup_epochs: int = Field(ge=0)
    min_lr: float | None = Field(None, ge=0)  # cosine only: its floor (0 when absent)
    milestones: list[int] | None = None  # multistep only: epochs at which the rates are multiplied by gamma
    gamma: float | None = Field(None, gt=0, lt=1)
    plateau: Plateau | None = None  # plateau only
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    num_frames: int = Field(gt=0)
    frame_sampling: Literal["segments", "consecutive"]
    image_size: int = Field(gt=0)
    amp: bool
    augment: Augment
    mixup: float = Field(ge=0, le=1)  # per-batch probability
    mixup_alpha: float | None = Field(None, gt=0)
    fmix: float = Field(ge=0, le=1)
    fmix_alpha: float | None = Field(None, gt=0)
    fmix_decay_power: float | None = Field(None, gt=0)
    label_smoothing: float = Field(ge=0, lt=1)
    loss: dict[str, Any] = {}
    validation: Validation | None = None
    select_by: Literal["test_uar", "test_war", "val_loss", "val_uar", "val_war"]
    # Stop once an epoch's training accuracy (top-1 on its training batches) exceeds this share (OUS: "deemed
    # overfitting if the training accuracy exceeded 80%"); None: no such rule.
    stop_train_accuracy: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        def need(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(message)

        need((self.momentum is not None) == (self.optimizer == "sgd"), "momentum is given iff optimizer is sgd")
        need((self.betas is not None) == (self.optimizer != "sgd"), "betas are given iff optimizer is adam/adamw")
        need(self.min_lr is None or self.schedule == "cosine", "min_lr is the floor of a cosine schedule")
        need(self.lr is not None or bool(self.lr_groups), "lr is needed unless lr_groups give every rate")
        need(not self.min_lr or self.lr is not None, "a min_lr above 0 is a floor relative to lr: give lr")
        need(self.min_lr is None or self.lr is None or self.min_lr < self.lr, "min_lr must be below lr")
        stepped = self.schedule == "multistep"
        need((self.milestones is not None) == stepped and (self.gamma is not None) == stepped,
             "milestones and gamma are given iff schedule is multistep")
        if self.milestones is not None:
            need(bool(self.milestones) and self.milestones == sorted(set(self.milestones)) and 0 < self.milestones[0],
                 "milestones must be positive and increase strictly")
        need((self.plateau is not None) == (self.schedule == "plateau"), "plateau is given iff schedule is plateau")
        need(self.mixup + self.fmix <= 1 + 1e-9, "mixup + fmix are per-batch probabilities: their sum is at most 1")
        need((self.mixup_alpha is not None) == (self.mixup > 0), "mixup_alpha is given iff mixup > 0")
        need((self.fmix_alpha is not None) == (self.fmix > 0) and (self.fmix_decay_power is not None) == (self.fmix > 0),
             "fmix_alpha and fmix_decay_power are given iff fmix > 0")
        uses_validation = self.select_by.startswith("val_") or (self.plateau is not None
                                                                and self.plateau.monitor.startswith("val_"))
        need(self.validation is not None or not uses_validation,
             "select_by / plateau monitor on a validation metric need a `validation` split")
        need(self.validation is None or uses_validation,
             "a `validation` split is only held out when select_by or the plateau monitor reads it")
        try:
            LOSS_CONSTANTS.get(self.method, NoLossConstants).model_validate(self.loss)
        except ValidationError as exc:
            raise ValueError(_describe(exc, f"the {self.method} loss block", prefix="loss.")) from None
        return self

    def loss_constants(self) -> dict[str, float]:
        """The loss block as the method's keyword arguments (DK-CLIP's `lambda` -> `lam`)."""
        return LOSS_CONSTANTS.get(self.method, NoLossConstants).model_validate(self.loss).model_dump()

    def group_lrs(self) -> dict[str, float]:
        """Every named group's rate, `base` (= lr, where the recipe has one) for the parameters no group claims."""
        base = {"base": self.lr} if self.lr is not None else {}
        return base | {name: group.lr for name, group in self.lr_groups.items()}


# ---- loading --------------------------------------------------------------------------------------------------------

def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "lr_groups":
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str, prefix: str = "") -> str:
    problems = []
    for item in error.errors():
        where = prefix + (".".join(str(part) for part in item["loc"]) or "recipe")
        what = "unknown key (misspelt?)" if item["type"] == "extra_forbidden" else item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {what}")
    return f"{source}: " + "; ".join(problems)


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or "defaults" not in data:
        raise RecipeError(f"{path}: a recipe file is an object with a `defaults` block (docs/TRAINING_RECIPES.md)")
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise RecipeError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))} (known: "
                          f"{', '.join(sorted(FILE_KEYS))})")
    unknown = set(data.get("datasets", {})) - set(DATASETS)
    if unknown:
        raise RecipeError(f"{path}: unknown dataset(s) {', '.join(sorted(unknown))} in `datasets`")
    return data


def recipe_path(method: str) -> Path:
    path = RECIPE_DIR / f"{method}.json"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPE_DIR.glob("*.json"))
        raise RecipeError(f"no training recipe for {method!r} ({path}); recipes: {', '.join(known)}")
    return path


def load_recipe(method: str, dataset: str, overrides: dict[str, Any] | None = None,
                path: str | Path | None = None) -> Recipe:
    """The validated recipe of `method` on `dataset`: the file at `path` (a user's own recipe) or the method's
    paper recipe, then `overrides` (None values ignored) on top."""
    path = Path(path) if path is not None else recipe_path(method)
    data = read_recipe_file(path)
    if data.get("method", method) != method:
        raise RecipeError(f"{path} is a recipe for {data['method']!r}, not {method!r}")
    resolved = _merge(data["defaults"], data.get("datasets", {}).get(dataset, {}))
    resolved |= {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Recipe.model_validate({"method": method} | resolved)
    except ValidationError as exc:
        raise RecipeError(_describe(exc, f"{path} ({dataset})")) from None
