"""The GPU conditions every real run has, checked on the CPU: each method's objective under fp16 and bf16 autocast
with logits at +-1e4 (a confident wrong prediction at the edge of fp16) stays finite, gradients included; FMix and
mixup keep the frames' device (checked on fake CUDA tensors, which raise on meeting a CPU tensor as a GPU does)."""

import numpy as np
import pytest
import torch

from models.data.mixing import fmix, mixup, one_hot, smooth_targets
from models.losses import extreme_objective
from models.registry import list_models

from .test_training_recipes import batch, build


@pytest.mark.parametrize("method", list_models())
def test_every_objective_stays_finite_under_fp16_and_bf16_with_extreme_logits(method):
    torch.manual_seed(0)
    training = build(method)
    model = training.model.train()
    faces, labels, scene = batch(model.bundle_cfg, size=4)
    targets = smooth_targets(one_hot(labels, len(model.bundle_cfg["labels"])), 0.1)  # mass on every class
    for dtype in (torch.float16, torch.bfloat16):
        finite = extreme_objective(model, faces, targets, scene, dtype)
        assert all(finite.values()), f"{method} under {dtype}: {finite}"


def test_dk_clip_local_terms_stay_finite_where_fp16_rounded_their_floor_to_zero():
    model = build("dk_clip").model.train()
    faces, labels, _ = batch(model.bundle_cfg, size=4)
    targets = smooth_targets(one_hot(labels, len(model.labels)), 0.1)
    with torch.autocast("cpu", dtype=torch.float16):
        out = model.outputs(faces)
        out.local_logits = out.local_logits.detach() * 0 + torch.where(torch.rand(out.local_logits.shape) > 0.5,
                                                                       100.0, -100.0).half()
        loss = model.objective(out, targets)
    assert torch.isfinite(loss.terms["L_l"]) and torch.isfinite(loss.terms["L_k"])
    assert loss.total.dtype == torch.float32


def test_mixing_keeps_the_frames_device():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(), torch.device("cuda"):
        faces = torch.randn(4, 2, 3, 16, 16)
        targets = torch.eye(4)[:, :3].contiguous()
        for mixed, mixed_targets in (fmix(faces, targets, 1.0, 3.0, np.random.default_rng(0)),
                                     mixup(faces, targets, 0.4, np.random.default_rng(0))):
            assert mixed.device.type == "cuda" and mixed_targets.device.type == "cuda"
