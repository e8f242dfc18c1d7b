"""One mixed-precision training step of a method at its recipe's batch size, random weights and random windows:
step time, samples/s, peak memory, a finite loss, and where the gradients went (every trainable parameter gets
one, no frozen parameter does, and the optimiser step leaves frozen weights as they were)."""

from __future__ import annotations

import time
from typing import Any

import torch

DATASETS = ("dfew", "ferv39k", "mafw")
NOT_A_CLIP = "mini-xception"  # the baseline's recipe backbone: its factory takes no backbone argument


def recipe_plan(method: str) -> tuple[Any, str, list[int]]:
    """(the DFEW recipe, its backbone, every batch size the recipe gives over its datasets)."""
    from models.recipes import load_recipe

    recipes = [load_recipe(method, dataset) for dataset in DATASETS]
    return recipes[0], recipes[0].backbone, sorted({r.batch_size for r in recipes})


def build_for_training(method: str, recipe: Any, device: torch.device, tiny: bool):
    """(model, optimiser with the recipe's parameter groups, loss(faces, labels, scene) -> scalar), as
    `python -m models.train` builds them: the one place that knows the trainer's API. The batch is not mixed
    (mixup/FMix are data augmentation; the check is on the objective). `tiny`: the tiny CLIP at its own 64 px."""
    from models.training import build_training

    training = build_training(method, recipe, device=device, **size_options(recipe, tiny))

    def loss(faces: torch.Tensor, labels: torch.Tensor, scene: torch.Tensor | None) -> torch.Tensor:
        faces, targets, _ = training.targets(faces, labels, kind="none")
        return training.objective(faces, targets, scene)[0]

    return training.model, training.optimizer, loss


def size_options(recipe: Any, tiny: bool) -> dict[str, Any]:
    """build_training's backbone and image_size: the recipe's, or with `tiny` the tiny CLIP at its own 64 px (the
    baseline has no CLIP and keeps its own)."""
    clip = recipe.backbone != NOT_A_CLIP
    return {"backbone": "tiny" if tiny and clip else None, "image_size": 64 if tiny and clip else None}


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the card has it (no loss scaling needed), else fp16 on a GPU; fp32 on a CPU (bf16 there is
    emulated on CPUs without AVX-512 BF16/AMX, and many times slower than fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def random_batch(cfg: dict, batch: int, device: torch.device, seed: int = 0):
    """Random normalised windows (faces, and scene for scene-aware models) and class-index labels."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"])
    faces = torch.randn(shape, generator=gen).to(device)
    scene = torch.randn(shape, generator=gen).to(device) if cfg.get("needs_scene") else None
    labels = torch.randint(0, len(cfg["labels"]), (batch,), generator=gen).to(device)
    return faces, labels, scene


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gradient_check(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """After backward, before the optimiser step: which parameters got gradients."""
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable, frozen, missing, nonfinite, frozen_with_grad, frozen_in_optimizer = 0, 0, [], [], [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            trainable += p.numel()
            if p.grad is None:
                missing.append(name)
            elif not bool(torch.isfinite(p.grad).all()):
                nonfinite.append(name)
        else:
            frozen += p.numel()
            if p.grad is not None:
                frozen_with_grad.append(name)
            if id(p) in in_optimizer:
                frozen_in_optimizer.append(name)
    return {"trainable_params": trainable, "frozen_params": frozen,
            "trainable_without_grad": missing[:10], "trainable_without_grad_count": len(missing),
            "nonfinite_grads": nonfinite[:10], "frozen_with_grad": frozen_with_grad[:10],
            "frozen_in_optimizer": frozen_in_optimizer[:10]}


def _frozen_fingerprint(model: torch.nn.Module) -> torch.Tensor | None:
    sums = [p.detach().double().sum() for p in model.parameters() if not p.requires_grad]
    return torch.stack(sums) if sums else None


def training_step(model, optimizer, loss_fn, batch: int, device: torch.device, dtype: torch.dtype,
                  timed_steps: int = 2) -> dict:
    """A first step (checked: loss, gradients, frozen weights), then `timed_steps` more, timed."""
    cfg = model.bundle_cfg
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    faces, labels, scene = random_batch(cfg, batch, device)
    model.train()

    def step(check: bool) -> tuple[float, dict | None]:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = loss_fn(faces, labels, scene)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # fp16: the check reads true gradients (an overflow the scaler skips shows)
        grads = gradient_check(model, optimizer) if check else None
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach().float()), grads

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _frozen_fingerprint(model)
    _sync(device)
    started = time.perf_counter()
    loss, grads = step(check=True)
    _sync(device)
    first_s = time.perf_counter() - started
    skipped = 0  # fp16: the scaler starts high and skips overflowing steps while it halves its scale
    while scaler.is_enabled() and grads["nonfinite_grads"] and skipped < 24:
        skipped += 1
        loss, grads = step(check=True)
    after = _frozen_fingerprint(model)
    frozen_changed = before is not None and not torch.equal(before, after)
    times = []
    for _ in range(timed_steps):
        _sync(device)
        started = time.perf_counter()
        step(check=False)
        _sync(device)
        times.append(time.perf_counter() - started)
    step_s = sorted(times)[len(times) // 2] if times else first_s
    optimizer.zero_grad(set_to_none=True)
    ok = (torch.isfinite(torch.tensor(loss)).item() and not grads["trainable_without_grad_count"]
          and not grads["nonfinite_grads"] and not grads["frozen_with_grad"] and not grads["frozen_in_optimizer"]
          and not frozen_changed)
    return {"batch": batch, "dtype": str(dtype).removeprefix("torch."), "loss": loss, "first_step_s": first_s,
            "step_s": step_s, "steps_timed": len(times), "samples_per_s": batch / step_s,
            "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None),
            "frozen_weights_changed": frozen_changed, "fp16_overflow_steps_skipped": skipped, "ok": bool(ok)} | grads
