"""Each registered method can learn: trained on one fixed batch (tiny backbone at 32 px, the recipe's frames, its
optimiser, parameter groups, label smoothing and batch mixing; no schedule), its objective on that batch (unmixed)
falls to at most half its first value within STEPS optimiser steps, and every trainable parameter receives a
non-zero gradient and moves. A method whose loss cannot fall, or whose trainable parameters get no update, fails.

The recipes' rates are set for thousands of steps from pretrained ViTs; here every rate of a method is multiplied by
the one factor in LR_SCALE (all its groups alike, so their ratios stay the recipe's)."""

import numpy as np
import pytest
import torch

from models.registry import list_models
from models.training.optim import scale_lrs

from .test_training_recipes import batch, build

STEPS = 20  # most optimiser steps; the loss is read every CHECK_EVERY steps and the test stops once it has halved
CHECK_EVERY = 5
LR_SCALE = {  # method -> the factor on every one of its recipe rates (1: the recipe's own)
    "baseline": 1.0, "duse": 1.0, "dfer_clip": 1.0,
    "clip_guided": 3.0,  # 2e-5 (AdamW)
    "ous": 10.0,  # 2e-3 (Adam) on prompts and heads, with eq. 4's three terms
    "pe_clip": 30.0,  # 2e-4 adapters / 3e-5 prompts (AdamW), with mixup/FMix on 70 % of the steps
    "dk_clip": 300.0,  # 2e-6 (AdamW), every batch mixed and targets smoothed
}


@pytest.mark.parametrize("method", list_models())
def test_each_method_halves_its_loss_on_one_batch_and_updates_every_trainable_parameter(method):
    assert method in LR_SCALE, f"{method}: give it a rate scale here (1.0 when its recipe's rates learn in time)"
    torch.manual_seed(0)
    training = build(method)
    model = training.model
    faces, labels, scene = batch(model.bundle_cfg, size=4)
    scale_lrs(training.optimizer, LR_SCALE[method])
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    start = {n: p.detach().clone() for n, p in trainable.items()}
    reached = set()

    def plain_loss() -> float:
        model.train()
        with torch.no_grad():
            return float(training.objective(faces, training.targets(faces, labels, kind="none")[1], scene)[0])

    rng = np.random.default_rng(0)
    first, losses = plain_loss(), []
    for step in range(1, STEPS + 1):
        model.train()
        mixed, targets, _ = training.targets(faces, labels, rng)  # the recipe's mixing, drawn per step
        loss = training.objective(mixed, targets, scene)[0]
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        reached |= {n for n, p in trainable.items() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
        training.optimizer.step()
        if step % CHECK_EVERY == 0:
            losses.append(plain_loss())
            if losses[-1] <= first / 2:
                break
    assert losses[-1] <= first / 2, f"{method}: loss {first:.3f} -> {losses} in {STEPS} steps (x{LR_SCALE[method]})"
    unreached = sorted(set(trainable) - reached)
    unmoved = sorted(n for n, p in trainable.items() if torch.equal(p.detach(), start[n]))
    assert not unreached, f"{method}: no gradient ever reached {unreached[:5]}"
    assert not unmoved, f"{method}: the optimiser never moved {unmoved[:5]}"
