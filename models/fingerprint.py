"""A trained model's fingerprint: its logits on a fixed seeded input, computed when a checkpoint is saved and
recomputed when it is loaded. A rebuild that differs from the model as trained in anything that changes numbers (the
activation, the backbone, the input size, the frame count, a loss constant, a config default or a library that
changed since) gives other logits, and `load_model` refuses it, naming what differs.

Both ends compute in exact float32 (autocast off, TF32 off), so a fingerprint taken on a GPU matches the CPU
recomputation to float32 rounding; the tolerance (relative to the largest logit) leaves room for that, and no more."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

FINGERPRINT_SEED = 0
FINGERPRINT_BATCH = 1  # one window: recomputing it on a CPU when a checkpoint loads costs one window's forward
# |rebuilt - saved| <= tolerance * max(1, max |saved|); GPU fp32 vs CPU fp32 of a ViT-L method differs by ~1e-5 of that
FINGERPRINT_TOLERANCE = 1e-3


def random_inputs(cfg: dict, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Normalised random windows shaped as the model expects (faces, and scene where needed), from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"])
    inputs = {"faces": torch.randn(shape, generator=gen)}
    if cfg.get("needs_scene"):
        inputs["scene"] = torch.randn(shape, generator=gen)
    return inputs


def fingerprint_inputs(cfg: dict) -> dict[str, torch.Tensor]:
    return random_inputs(cfg, FINGERPRINT_BATCH, FINGERPRINT_SEED)


@contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """No autocast and no TF32 (cuDNN convolutions use TF32 by default on Ampere and later)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    autocast_off = torch.autocast(device.type, enabled=False) if torch.amp.is_autocast_available(device.type) else None
    try:
        if autocast_off is None:
            yield
        else:
            with autocast_off:
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def model_fingerprint(model: torch.nn.Module) -> dict[str, Any]:
    """{"seed", "batch", "logits" [batch, C] float32 on the CPU}: the model's eval-mode logits on the seeded input;
    the model's train/eval mode is left as it was."""
    module = model.module if hasattr(model, "module") else model  # DDP wraps the model
    device = next(module.parameters()).device
    inputs = {k: v.to(device) for k, v in fingerprint_inputs(module.bundle_cfg).items()}
    training = module.training
    module.eval()
    try:
        with torch.no_grad(), exact_float32(device):
            logits = module(inputs["faces"], inputs.get("scene"))
    finally:
        module.train(training)
    return {"seed": FINGERPRINT_SEED, "batch": FINGERPRINT_BATCH, "logits": logits.detach().float().cpu()}


def fingerprint_difference(saved: dict[str, Any], logits: torch.Tensor) -> tuple[float, float]:
    """(max |logits - saved|, the tolerance for it); inf when the shapes differ."""
    reference = saved["logits"]
    tolerance = FINGERPRINT_TOLERANCE * max(1.0, float(reference.abs().max()))
    if logits.shape != reference.shape:
        return float("inf"), tolerance
    diff = float((logits.float() - reference).abs().max())
    return (diff if diff == diff else float("inf")), tolerance  # NaN counts as a mismatch
