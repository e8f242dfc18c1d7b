"""The training recipes in models/configs/train/*.json: their shape, and that every value says where it comes from.

Pure JSON checks (no torch, no model is built). The shape is documented in docs/TRAINING_RECIPES.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN_DIR = ROOT / "models" / "configs" / "train"
MODEL_DIR = ROOT / "models" / "configs"

METHODS = {"duse", "ous", "clip_guided", "pe_clip", "dk_clip"}
BACKBONES = {"ViT-B-32", "ViT-B-16", "ViT-L-14"}
# The embedded model's method: no paper in papers/, its own network instead of a CLIP backbone.
BASELINE = "baseline"
DATASETS = {"dfew", "ferv39k", "mafw"}
OPTIMIZERS = {"sgd", "adam", "adamw"}
SCHEDULES = {"cosine", "multistep", "constant", "step", "plateau"}
TOP_KEYS = {"method", "paper", "defaults", "datasets", "sources", "chosen"}

REQUIRED = {
    "backbone", "optimizer", "lr", "lr_groups", "weight_decay", "schedule", "warmup_epochs", "epochs",
    "batch_size", "num_frames", "image_size", "amp", "mixup", "fmix", "label_smoothing", "augment", "loss",
}
# present only in some recipes; each has its own condition below
OPTIONAL = {
    "momentum", "betas", "milestones", "gamma", "plateau", "min_lr", "mixup_alpha", "fmix_alpha",
    "fmix_decay_power", "select_by",
}
KNOWN = REQUIRED | OPTIONAL
AUGMENT_REQUIRED = {"random_crop", "flip", "color_jitter"}
AUGMENT_OPTIONAL = {"rotation"}
PLATEAU_KEYS = {"monitor", "factor", "patience", "stop_lr"}
SELECT_BY = {"val_loss", "val_uar", "val_war"}


def _files() -> list[Path]:
    return sorted(TRAIN_DIR.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _merged(config: dict, dataset: str) -> dict:
    """defaults with the dataset's overrides on top; dict-valued fields (augment, loss, lr_groups, plateau) merge
    one level deep, everything else is replaced."""
    merged = json.loads(json.dumps(config["defaults"]))
    for key, value in config["datasets"].get(dataset, {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _check_recipe(d: dict, where: str) -> None:
    """Every rule one resolved recipe (defaults, or defaults + a dataset's overrides) must keep."""
    missing = REQUIRED - d.keys()
    assert not missing, f"{where}: missing {sorted(missing)}"
    unknown = d.keys() - KNOWN
    assert not unknown, f"{where}: unknown fields {sorted(unknown)}"

    assert d["backbone"] in (BACKBONES | {"mini-xception"} if where.startswith(BASELINE) else BACKBONES), where
    assert d["optimizer"] in OPTIMIZERS, where
    assert _num(d["lr"]) and 0 < d["lr"] < 1, where
    assert isinstance(d["lr_groups"], dict), where
    for pattern, lr in d["lr_groups"].items():
        assert isinstance(pattern, str) and pattern, where
        assert _num(lr) and 0 < lr < 1, f"{where}: lr_groups[{pattern!r}]"

    # momentum for SGD only, betas for Adam/AdamW only
    assert ("momentum" in d) == (d["optimizer"] == "sgd"), f"{where}: momentum iff sgd"
    if "momentum" in d:
        assert _num(d["momentum"]) and 0 <= d["momentum"] < 1, where
    assert ("betas" in d) == (d["optimizer"] in {"adam", "adamw"}), f"{where}: betas iff adam/adamw"
    if "betas" in d:
        assert isinstance(d["betas"], list) and len(d["betas"]) == 2, where
        assert all(_num(b) and 0 <= b < 1 for b in d["betas"]), where

    assert _num(d["weight_decay"]) and d["weight_decay"] >= 0, where

    for key in ("epochs", "batch_size", "num_frames", "image_size"):
        assert _int(d[key]) and d[key] > 0, f"{where}: {key}"
    assert _int(d["warmup_epochs"]) and 0 <= d["warmup_epochs"] < d["epochs"], f"{where}: warmup_epochs"

    schedule = d["schedule"]
    assert schedule in SCHEDULES, where
    stepped = schedule in {"multistep", "step"}
    assert ("milestones" in d) == stepped, f"{where}: milestones iff multistep/step"
    assert ("gamma" in d) == stepped, f"{where}: gamma iff multistep/step"
    if stepped:
        ms = d["milestones"]
        assert isinstance(ms, list) and ms and all(_int(m) and m > 0 for m in ms), where
        assert ms == sorted(set(ms)) and ms[-1] < d["epochs"], f"{where}: milestones increasing and < epochs"
        if schedule == "step":
            assert len(ms) == 1, f"{where}: step takes one step size"
        assert _num(d["gamma"]) and 0 < d["gamma"] < 1, where
    assert ("plateau" in d) == (schedule == "plateau"), f"{where}: plateau iff schedule plateau"
    if "plateau" in d:
        p = d["plateau"]
        assert isinstance(p, dict) and set(p) == PLATEAU_KEYS, where
        assert p["monitor"] in {"val_loss", "val_uar", "val_war"}, where
        assert _num(p["factor"]) and 0 < p["factor"] < 1, where
        assert _int(p["patience"]) and p["patience"] > 0, where
        assert _num(p["stop_lr"]) and 0 <= p["stop_lr"] < d["lr"], where
    if "min_lr" in d:
        assert schedule == "cosine", f"{where}: min_lr is the floor of a cosine schedule"
        assert _num(d["min_lr"]) and 0 <= d["min_lr"] < d["lr"], where

    assert type(d["amp"]) is bool, where

    # mixup / fmix: per-batch probabilities (one of them, or neither, per batch)
    for key in ("mixup", "fmix"):
        assert _num(d[key]) and 0 <= d[key] <= 1, f"{where}: {key}"
    assert d["mixup"] + d["fmix"] <= 1 + 1e-9, f"{where}: mixup + fmix probabilities exceed 1"
    assert ("mixup_alpha" in d) == (d["mixup"] > 0), f"{where}: mixup_alpha iff mixup"
    for key in ("fmix_alpha", "fmix_decay_power"):
        assert (key in d) == (d["fmix"] > 0), f"{where}: {key} iff fmix"
    for key in ("mixup_alpha", "fmix_alpha", "fmix_decay_power"):
        if key in d:
            assert _num(d[key]) and d[key] > 0, f"{where}: {key}"
    assert _num(d["label_smoothing"]) and 0 <= d["label_smoothing"] < 1, where

    aug = d["augment"]
    assert isinstance(aug, dict), where
    assert AUGMENT_REQUIRED <= aug.keys() <= AUGMENT_REQUIRED | AUGMENT_OPTIONAL, f"{where}: augment keys"
    assert type(aug["random_crop"]) is bool and type(aug["flip"]) is bool, where
    assert _num(aug["color_jitter"]) and aug["color_jitter"] >= 0, where
    if "rotation" in aug:
        assert _num(aug["rotation"]) and 0 <= aug["rotation"] <= 180, where

    loss = d["loss"]
    assert isinstance(loss, dict), where
    for name, value in loss.items():
        assert isinstance(name, str) and name, where
        assert _num(value) or isinstance(value, (bool, str)), f"{where}: loss[{name!r}]"
    if "temperature" in loss:
        assert 0 < loss["temperature"] <= 1, where

    if "select_by" in d:
        assert d["select_by"] in SELECT_BY, where


# ---- tests ------------------------------------------------------------------------------------------------------

def test_one_recipe_per_method():
    assert {p.stem for p in _files()} == METHODS | {BASELINE}


@pytest.fixture(params=_files(), ids=lambda p: p.stem)
def config(request):
    path = request.param
    return path.stem, _load(path)


def test_top_level(config):
    stem, c = config
    assert set(c) == TOP_KEYS
    assert c["method"] == stem
    assert isinstance(c["paper"], str) and c["paper"].strip()
    if stem != BASELINE:
        assert c["paper"].startswith("papers/") and c["paper"].endswith(".txt")
    for key in ("defaults", "datasets", "sources", "chosen"):
        assert isinstance(c[key], dict), key


def test_paper_exists_where_the_papers_are():
    bases = [b for b in (ROOT.parent / "shared", ROOT / "shared", ROOT) if (b / "papers").is_dir()]
    if not bases:
        pytest.skip("no papers/ directory in this checkout")
    for path in _files():
        if path.stem == BASELINE:
            continue
        paper = _load(path)["paper"]
        assert any((b / paper).is_file() for b in bases), f"{path.name}: {paper} not found"


def test_defaults_shape(config):
    stem, c = config
    _check_recipe(c["defaults"], f"{stem}.defaults")


def test_dataset_overrides(config):
    stem, c = config
    assert set(c["datasets"]) <= DATASETS, f"{stem}: unknown datasets {set(c['datasets']) - DATASETS}"
    for dataset, overrides in c["datasets"].items():
        assert isinstance(overrides, dict), f"{stem}.{dataset}"
        unknown = overrides.keys() - KNOWN
        assert not unknown, f"{stem}.datasets.{dataset}: unknown keys {sorted(unknown)}"
        _check_recipe(_merged(c, dataset), f"{stem}+{dataset}")


def test_every_default_is_documented(config):
    stem, c = config
    documented = c["sources"].keys() | c["chosen"].keys()
    undocumented = c["defaults"].keys() - documented
    assert not undocumented, f"{stem}: fields with no entry in sources or chosen: {sorted(undocumented)}"
    for section in ("sources", "chosen"):
        for key, text in c[section].items():
            assert isinstance(text, str) and text.strip(), f"{stem}.{section}[{key!r}] is empty"
            root = key.split(".", 1)[0]
            assert root in c["defaults"] or root == "datasets", f"{stem}.{section}[{key!r}] names no field"
            if key.startswith("datasets."):
                assert key.split(".", 1)[1] in DATASETS, f"{stem}.{section}[{key!r}]"


def test_dataset_overrides_are_documented(config):
    """A per-dataset value must come from the paper: the datasets entry in sources (or the field's) says where."""
    stem, c = config
    for dataset, overrides in c["datasets"].items():
        if overrides:
            assert "datasets" in c["sources"] or f"datasets.{dataset}" in c["sources"], f"{stem}.{dataset}"


def test_agrees_with_model_config(config):
    """The architecture config (models/configs/<method>.json), where there is one, names the same headline backbone.
    (Frame counts may differ on purpose: clip_guided's model config uses the service's 16-frame window, the recipe
    the paper's T = 8; see docs/TRAINING_RECIPES.md.)"""
    stem, c = config
    path = MODEL_DIR / f"{stem}.json"
    if stem == BASELINE:
        assert not path.is_file() and c["defaults"]["backbone"] == "mini-xception"  # no CLIP architecture config
        return
    assert path.is_file(), f"models/configs/{stem}.json is missing"
    model = _load(path)["defaults"]
    assert model.get("backbone", c["defaults"]["backbone"]) == c["defaults"]["backbone"]
