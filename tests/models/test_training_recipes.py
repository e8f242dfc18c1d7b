"""Every registered method trains its own paper recipe (tiny backbone, random windows, one step): the model is built
for the recipe's frames, every term of its objective is finite and trains the parameters, mixing on where the
recipe mixes, each parameter group at the recipe's rate, frozen parameters untouched. Walks the registry, so a new
method is covered as soon as it registers (and it must ship a recipe)."""

import numpy as np
import pytest
import torch

from models.recipes import load_recipe
from models.registry import list_models
from models.training import build_training
from models.training.optim import group_of

SIZE = 32  # tiny CLIP at 32 px: 4 patches per frame, so a 16-frame step takes well under a second


def build(method: str):
    recipe = load_recipe(method, "dfew")
    clip = recipe.backbone != "mini-xception"
    return build_training(method, recipe, backbone="tiny" if clip else None, image_size=SIZE if clip else None)


def batch(cfg: dict, size: int = 2):
    shape = (size, cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"])
    faces = torch.randn(shape)
    scene = torch.randn(shape) if cfg["needs_scene"] else None
    return faces, torch.tensor([0, 3, 1, 5][:size]), scene


def trainable_gradient(model: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in model.parameters() if p.requires_grad and p.grad is not None)


@pytest.fixture(params=list_models())
def training(request):
    torch.manual_seed(0)
    return build(request.param)


def test_the_model_is_built_for_the_recipes_frames_and_size(training):
    cfg, recipe = training.model.bundle_cfg, training.recipe
    assert cfg["num_frames"] == recipe.num_frames
    assert cfg["image_size"] == (SIZE if recipe.backbone == "tiny" else recipe.image_size)
    for name, value in recipe.loss_constants().items():  # the recipe's loss block reached the model
        assert getattr(training.model, name) == value, name


def test_each_parameter_group_trains_at_the_recipes_rate(training):
    rates = training.recipe.group_lrs()
    groups = training.optimizer.param_groups
    assert {g["name"] for g in groups} >= set(training.recipe.lr_groups)
    for group in groups:
        assert group["lr"] == group["initial_lr"] == rates[group["name"]]
        assert group["weight_decay"] in (training.recipe.weight_decay, 0.0)
    names = {id(p): n for n, p in training.model.named_parameters()}
    for group in groups:  # every parameter sits in the group its name selects
        assert all(group_of(names[id(p)], training.recipe) == group["name"] for p in group["params"])
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in training.model.parameters() if p.requires_grad}
    if training.recipe.optimizer == "sgd":
        assert all(g["momentum"] == training.recipe.momentum for g in groups)
    else:
        assert all(tuple(g["betas"]) == training.recipe.betas for g in groups)


def objective_terms(training, faces, targets, scene) -> dict[str, torch.Tensor]:
    """The model's own objective terms with their graphs, on the recipe's smoothed targets (what the trainer's
    objective computes before it detaches them for logging). A term logged without a graph is accepted only when it
    is the whole objective (a one-term loss), and stands for the total."""
    from models.data.mixing import smooth_targets

    model = training.model
    targets = smooth_targets(targets, training.recipe.label_smoothing)
    if not hasattr(model, "loss"):
        return {"L_ce": torch.nn.functional.cross_entropy(model(faces, scene), targets)}
    out = model.loss(faces, targets, scene)
    terms = {}
    for name, term in out.terms.items():
        if term.grad_fn is None:
            assert len(out.terms) == 1 and torch.equal(term, out.total.detach()), f"{name} is logged without a graph"
            term = out.total
        terms[name] = term
    return terms


def test_every_term_is_finite_and_trains_with_mixing_as_the_recipe_has_it(training):
    model = training.model.train()
    if hasattr(model, "alpha"):
        model.alpha = 0.0  # OUS: above alpha every term of eq. 4 trains (below it, the contrastive term alone)
    if hasattr(model, "theta"):
        model.theta = 0.0  # DK-CLIP: keep every snippet, so every local prediction takes part
    faces, labels, scene = batch(model.bundle_cfg, size=4)
    kinds = ["mixup", "fmix"] if training.mixing else ["none"]
    if training.mixing:
        assert training.mixing.mixup_p == training.recipe.mixup and training.mixing.fmix_p == training.recipe.fmix
    logged = set(training.objective(faces, training.targets(faces, labels, kind="none")[1], scene)[1])
    for kind in kinds:
        mixed, targets, drawn = training.targets(faces, labels, np.random.default_rng(3), kind=kind)
        assert drawn == kind and torch.allclose(targets.sum(1), torch.ones(len(labels)))
        if kind != "none":
            assert not torch.equal(mixed, faces) and (targets > 0).sum(1).max() == 2  # two label sets per clip
        names = list(objective_terms(training, mixed, targets, scene))
        assert set(names) == logged
        for name in names:
            model.zero_grad(set_to_none=True)
            term = objective_terms(training, mixed, targets, scene)[name]
            assert torch.isfinite(term), f"{training.method} {name} ({kind}) is not finite"
            term.backward()
            assert trainable_gradient(model) > 0, f"{training.method} {name} ({kind}) puts no gradient anywhere"


def test_one_step_leaves_frozen_parameters_bit_identical(training):
    model = training.model.train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    faces, labels, scene = batch(model.bundle_cfg)
    faces, targets, _ = training.targets(faces, labels, np.random.default_rng(0))
    training.optimizer.zero_grad(set_to_none=True)
    loss, _, _ = training.objective(faces, targets, scene)
    loss.backward()
    training.set_lr(step=training.recipe.warmup_epochs * 10, steps_per_epoch=10)  # past any warm-up
    training.optimizer.step()
    for name, before in frozen.items():
        assert torch.equal(before, dict(model.named_parameters())[name]), f"frozen {name} changed"
    assert any(not torch.equal(before, dict(model.named_parameters())[n]) for n, before in trainable.items())
