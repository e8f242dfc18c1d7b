"""The recipe schema (models/recipes.py) and what the trainer does with each field: refusal of unknown keys by name,
every declared field read by the trainer, schedules, the plateau rule, the validation split, and mixed targets
reaching every loss term as the lambda-weighted sum over the two label sets."""

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from models.recipes import (Augment, LRGroup, Plateau as PlateauSpec, Recipe, RecipeError, Validation, load_recipe,
                            read_recipe_file, recipe_path)
from models.training.data import stratified_split
from models.training.schedule import Plateau, lr_factor

ROOT = Path(__file__).resolve().parents[2]


def write_recipe(tmp_path, method="duse", **changes) -> Path:
    data = read_recipe_file(recipe_path(method))
    for key, value in changes.items():
        if value is None:
            data["defaults"].pop(key, None)
        else:
            data["defaults"][key] = value
    path = tmp_path / f"{method}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("changes, named", [
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"augment": {"random_crop": True, "flip": True, "color_jiter": 0.5}}, "augment.color_jiter"),
    ({"plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 2, "stop_below": 1e-7}}, "plateau"),
    ({"lr_groups": {"prompts": {"params": ["*prompt*"], "rate": 0.1}}}, "lr_groups.prompts.rate"),
])
def test_a_misspelt_key_is_refused_by_name(tmp_path, changes, named):
    with pytest.raises(RecipeError, match=re.escape(named)):
        load_recipe("duse", "dfew", path=write_recipe(tmp_path, **changes))


def test_a_misspelt_loss_constant_is_refused_by_name(tmp_path):
    with pytest.raises(RecipeError, match=r"loss\.lamda"):
        load_recipe("dk_clip", "dfew", path=write_recipe(tmp_path, "dk_clip", loss={"lamda": 1.0, "theta": 0.15}))
    with pytest.raises(RecipeError, match=r"loss\.alpha"):  # a constant the method does not have
        load_recipe("duse", "dfew", path=write_recipe(tmp_path, loss={"alpha": 1.0}))


def test_inconsistent_recipes_are_refused(tmp_path):
    with pytest.raises(RecipeError, match="momentum"):
        load_recipe("duse", "dfew", path=write_recipe(tmp_path, optimizer="sgd"))
    with pytest.raises(RecipeError, match="validation"):
        load_recipe("ous", "dfew", path=write_recipe(tmp_path, "ous", validation=None))
    with pytest.raises(RecipeError, match="mixup_alpha"):
        load_recipe("duse", "dfew", path=write_recipe(tmp_path, mixup=0.5))


def test_cli_refuses_a_misspelt_key_with_exit_code_2(tmp_path, capsys):
    from models.training.cli import main

    path = write_recipe(tmp_path, num_frame=16)
    code = main(["--model", "duse", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--recipe", str(path)])
    assert code == 2 and "num_frame: unknown key" in capsys.readouterr().err


def _reads(source: str, field: str) -> bool:
    return re.search(rf"\.{field}\b", source) is not None


def test_every_declared_field_is_read_by_the_trainer():
    """Each field of the schema (and of its nested blocks) is read somewhere in the trainer, the data transforms
    or the mixing; the schema's own validator does not count."""
    import models.data.mixing
    import models.data.transforms
    import models.training

    package = Path(models.training.__file__).parent
    sources = [p.read_text() for p in package.glob("*.py")]
    sources += [inspect.getsource(models.data.mixing), inspect.getsource(models.data.transforms),
                inspect.getsource(Recipe.loss_constants), inspect.getsource(Recipe.group_lrs)]
    trainer = "\n".join(sources)
    for schema in (Recipe, Augment, LRGroup, PlateauSpec, Validation):
        unread = [name for name in schema.model_fields if not _reads(trainer, name)]
        assert not unread, f"{schema.__name__} fields the trainer never reads: {unread}"


def recipe(**fields) -> Recipe:
    return load_recipe("duse", "dfew").model_copy(update=fields)


def test_schedules():
    cosine = recipe(lr=1.0, epochs=10, schedule="cosine", warmup_epochs=1, min_lr=0.01, milestones=None, gamma=None)
    factors = [lr_factor(step, 10, cosine) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # linear warm-up over epoch 1
    assert factors[-1] == pytest.approx(0.01, abs=0.01) and all(a >= b for a, b in zip(factors[10:], factors[11:]))
    dfer = load_recipe("dfer_clip", "dfew")  # SGD, multistep 30/40 x0.1
    assert [lr_factor(e * 10, 10, dfer) for e in (0, 29, 30, 40)] == pytest.approx([1, 1, 0.1, 0.01])


def test_plateau_divides_after_patience_epochs_and_stops_below_the_stop_rate():
    ous = load_recipe("ous", "dfew")
    plateau = Plateau.from_recipe(ous)
    assert (plateau.monitor, plateau.patience, plateau.stop_lr) == ("val_loss", 5, 1e-7)
    plateau.step(1.0)
    for _ in range(4):
        plateau.step(1.0)  # not lower: 4 epochs without a decrease
    assert plateau.scale == 1.0
    plateau.step(1.5)  # the fifth
    assert plateau.scale == pytest.approx(1 / 3) and not plateau.exhausted(ous)
    plateau.step(0.5)  # a decrease resets the count
    assert plateau.waited == 0
    epochs = 0
    while not plateau.exhausted(ous):
        plateau.step(2.0)
        epochs += 1
    assert ous.lr * plateau.scale < 1e-7 <= ous.lr * plateau.scale * 3 and epochs == 5 * 9  # 2e-3 / 3^10 < 1e-7
    uar = Plateau("val_uar", 0.5, 1, 0.0)
    uar.step(0.4)
    uar.step(0.5)  # higher is better for UAR
    assert uar.scale == 1.0


def test_a_nan_epoch_is_neither_best_nor_an_improvement():
    from models.training.best_and_last import Selection

    selection = Selection("val_loss")
    assert not selection.better({"val_loss": float("nan")}) and selection.better({"val_loss": 2.0})
    assert selection.best == 2.0 and not selection.better({"val_loss": float("nan")})
    plateau = Plateau("val_loss", 0.5, 1, 0.0)
    plateau.step(float("nan"))
    assert plateau.best is None and plateau.scale == 0.5  # a diverged epoch counts against patience


def test_validation_split_is_seeded_and_stratified():
    labels = [0] * 20 + [1] * 10 + [2] * 2 + [3]
    train, held = stratified_split(labels, Validation(fraction=0.1, seed=0))
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels))) and not set(train) & set(held)
    counts = np.bincount(np.asarray(labels)[held], minlength=4)
    assert counts.tolist() == [2, 1, 1, 0]  # a tenth of each class, at least one, never a class's only clip
    again, _ = stratified_split(labels, Validation(fraction=0.1, seed=0))
    other, _ = stratified_split(labels, Validation(fraction=0.1, seed=1))
    assert np.array_equal(train, again) and not np.array_equal(train, other)


@pytest.mark.parametrize("method", ["dk_clip", "ous"])
def test_mixed_targets_train_every_term_as_the_lambda_weighted_sum_over_both_label_sets(method, tiny_backbone):
    """Each labelled term on a mixed target equals lam * term(labels a) + (1 - lam) * term(labels b) on the same
    input (the label-free terms do not depend on the targets at all)."""
    from models.data.mixing import one_hot, smooth_targets
    from models.registry import create_model

    torch.manual_seed(0)
    model = create_model(method, backbone="tiny", image_size=32, theta=0.0) if method == "dk_clip" else \
        create_model(method, backbone="tiny", image_size=32, num_frames=4)
    model.eval()
    frames = model.bundle_cfg["num_frames"]
    faces = torch.randn(2, frames, 3, 32, 32)
    scene = torch.randn_like(faces) if method == "ous" else None
    a, b, lam = torch.tensor([0, 3]), torch.tensor([5, 1]), 0.3
    mixed = smooth_targets(lam * one_hot(a, 7) + (1 - lam) * one_hot(b, 7), 0.1)
    with torch.no_grad():
        on_mixed = model.loss(faces, mixed, scene).terms
        on_a = model.loss(faces, smooth_targets(one_hot(a, 7), 0.1), scene).terms
        on_b = model.loss(faces, smooth_targets(one_hot(b, 7), 0.1), scene).terms
    labelled = {"dk_clip": ("L_g", "L_l"), "ous": ("L_polarity", "L_contrast")}[method]
    for name in on_mixed:
        expected = lam * on_a[name] + (1 - lam) * on_b[name] if name in labelled else on_a[name]
        if name == "L_global":
            continue  # a sum of the others
        assert torch.allclose(on_mixed[name], expected, atol=1e-5), name
        if name in labelled:
            assert not torch.allclose(on_a[name], on_b[name]), name  # the labels matter to this term


def test_pe_clips_recipe_samples_16_consecutive_frames():
    from models.data.sampling import SAMPLERS

    assert load_recipe("pe_clip", "dfew").frame_sampling == "consecutive"
    train, test = SAMPLERS["consecutive"]
    picked = train(60, 16, np.random.default_rng(0))
    assert np.array_equal(np.diff(picked), np.ones(15)) and 0 <= picked[0] <= 44
    assert test(60, 16).tolist() == list(range(22, 38))  # the centre run
    assert test(10, 16).tolist() == list(range(10)) + [9] * 6  # a short clip whole, its last frame repeated
