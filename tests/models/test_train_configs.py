"""The training recipes in models/configs/train/*.json: one per registered method, each valid against the schema
(models/recipes.py) for every dataset, and every value saying where it comes from (docs/TRAINING_RECIPES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.recipes import DATASETS, FILE_KEYS, Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[2]
TRAIN_DIR = ROOT / "models" / "configs" / "train"
MODEL_DIR = ROOT / "models" / "configs"
# The embedded model's method: no paper in papers/, its own network instead of a CLIP backbone.
BASELINE = "baseline"
BACKBONES = {"ViT-B-32", "ViT-B-16", "ViT-L-14"}


def _files() -> list[Path]:
    return sorted(TRAIN_DIR.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


# ---- tests ------------------------------------------------------------------------------------------------------

def test_one_recipe_per_method():
    from models.registry import list_models

    assert {p.stem for p in _files()} == set(list_models())


@pytest.fixture(params=_files(), ids=lambda p: p.stem)
def config(request):
    path = request.param
    return path.stem, _load(path)


def test_top_level(config):
    stem, c = config
    assert set(c) == FILE_KEYS
    assert c["method"] == stem
    assert isinstance(c["paper"], str) and c["paper"].strip()
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
        if not paper.startswith("papers/"):  # a method known from its released code (DFER-CLIP)
            continue
        assert any((b / paper).is_file() for b in bases), f"{path.name}: {paper} not found"


@pytest.mark.parametrize("dataset", DATASETS)
def test_valid_for_every_dataset(config, dataset):
    stem, c = config
    recipe = load_recipe(stem, dataset)
    assert recipe.backbone in (BACKBONES | {"mini-xception"} if stem == BASELINE else BACKBONES)
    assert set(c["datasets"]) <= set(DATASETS)
    assert recipe.warmup_epochs < recipe.epochs  # (a shorter --epochs run may end inside the warm-up)
    assert recipe.milestones is None or recipe.milestones[-1] < recipe.epochs


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
            assert root in Recipe.model_fields or root == "datasets", f"{stem}.{section}[{key!r}]"
            if key.startswith("datasets."):
                assert key.split(".", 1)[1] in DATASETS, f"{stem}.{section}[{key!r}]"


def test_dataset_overrides_are_documented(config):
    """A per-dataset value must come from the paper: the datasets entry in sources (or the field's) says where."""
    stem, c = config
    for dataset, overrides in c["datasets"].items():
        if overrides:
            assert "datasets" in c["sources"] or f"datasets.{dataset}" in c["sources"], f"{stem}.{dataset}"


def test_agrees_with_model_config(config):
    """The architecture config (models/configs/<method>.json), where there is one, names the same headline backbone
    and holds no loss constant (those are the recipe's). Frame counts may differ: the trainer builds the model for
    the recipe's (clip_guided: the paper's T = 8; its model config keeps the service's 16 for other uses)."""
    stem, c = config
    path = MODEL_DIR / f"{stem}.json"
    if stem == BASELINE:
        assert not path.is_file() and c["defaults"]["backbone"] == "mini-xception"  # no CLIP architecture config
        return
    assert path.is_file(), f"models/configs/{stem}.json is missing"
    model = _load(path)["defaults"]
    assert model.get("backbone", c["defaults"]["backbone"]) == c["defaults"]["backbone"]
    constants = load_recipe(stem, "dfew").loss_constants()
    assert not set(model) & set(constants), f"models/configs/{stem}.json holds loss constants: move them to the recipe"
