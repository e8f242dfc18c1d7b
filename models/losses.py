"""The model side of training objectives: targets as class probabilities, the one cross-entropy objective that
several methods share, and the float32 rule every objective keeps.

A method's `loss(faces, targets, scene=None)` takes `targets` as class indices [B] or as class probabilities [B, C]
(one-hot, label-smoothed, or mixed by mixup/FMix). Every term that reads the labels is linear in the target
distribution, so on a mixed batch each term is the lambda-weighted sum of that term over the two label sets, as the
authors of DK-CLIP train (their code feeds the mixed, smoothed targets to every term).

A loss is split in two: `outputs(faces, scene)` (the network, under whatever autocast the trainer runs) and
`objective(outputs, targets)` (the loss math), which runs with autocast off on float32 copies of the outputs
(`float32_math`). Under fp16 a probability below 6e-8 rounds to 0 (its log is -inf), a logit gap of 12 already
puts a softmax entry there, and an eps of 1e-8 is itself 0; bf16 keeps the range but only 3 significant digits.
`extreme_objective` checks that rule on every method: its objective on logits of +-1e4 under fp16/bf16 autocast.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import fields, is_dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from models.registry import LossOutput


def class_probabilities(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[B] class indices -> one-hot [B, C]; [B, C] probabilities pass through (as float32)."""
    if targets.dim() == 1:
        return F.one_hot(targets.long(), num_classes).to(torch.float32)
    return targets.float()


def soft_nll(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of log-probabilities [B, C] against class indices or probabilities, batch mean."""
    return -(class_probabilities(targets, log_probs.shape[-1]).to(log_probs.dtype) * log_probs).sum(-1).mean()


def float32_math(like: torch.Tensor):
    """Autocast off on `like`'s device, so the objective's matmuls and einsums stay in float32 (autocast would
    run them in fp16 even on float32 inputs). Pair it with `.float()` on the network's outputs."""
    kind = like.device.type
    return torch.autocast(kind, enabled=False) if torch.amp.is_autocast_available(kind) else nullcontext()


def cross_entropy_objective(logits: torch.Tensor, targets: torch.Tensor) -> LossOutput:
    """Plain cross-entropy (class indices or probabilities alike), in float32."""
    with float32_math(logits):
        ce = F.cross_entropy(logits.float(), targets if targets.dim() == 1 else targets.float())
    return LossOutput(ce, {"L_ce": ce}, logits)


def model_outputs(model: torch.nn.Module, faces: torch.Tensor, scene: torch.Tensor | None = None) -> Any:
    """What `model`'s objective reads: its `outputs`, or its logits for a model without its own objective."""
    outputs = getattr(model, "outputs", None)
    return outputs(faces, scene) if outputs is not None else model(faces, scene)


def model_objective(model: torch.nn.Module, outputs: Any, targets: torch.Tensor) -> LossOutput:
    objective = getattr(model, "objective", None)
    return objective(outputs, targets) if objective is not None else cross_entropy_objective(outputs, targets)


def model_loss(model: torch.nn.Module, faces: torch.Tensor, targets: torch.Tensor,
               scene: torch.Tensor | None = None) -> LossOutput:
    """The training loss of any registered model: its own objective, else cross-entropy on its logits."""
    return model_objective(model, model_outputs(model, faces, scene), targets)


class MethodObjective:
    """A method's loss as `objective(outputs(faces, scene), targets)`; the model class defines both (mix this in
    before nn.Module)."""

    def loss(self, faces: torch.Tensor, targets: torch.Tensor, scene: torch.Tensor | None = None) -> LossOutput:
        return self.objective(self.outputs(faces, scene), targets)


class CrossEntropyObjective(MethodObjective):
    """The objective of a method whose paper trains plain cross-entropy on its logits (DuSE eq. 1, CLIP-guided DFER
    eq. 12, PE-CLIP sec. 3.4): mix it into the model class before nn.Module."""

    def outputs(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        return self(faces, scene)

    def objective(self, logits: torch.Tensor, targets: torch.Tensor) -> LossOutput:
        return cross_entropy_objective(logits, targets)


def _extreme(tensor: torch.Tensor, magnitude: float, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, tensor.shape, generator=generator).to(tensor.device) * 2 - 1
    return (signs * magnitude).to(tensor.dtype).requires_grad_(True)


def extreme_logits(outputs: Any, magnitude: float = 1e4, seed: int = 0) -> tuple[Any, list[torch.Tensor]]:
    """`outputs` with every logits tensor (the outputs themselves when they are a tensor, else each dataclass field
    whose name ends in "logits") replaced by +-magnitude in its own dtype, as leaves that take gradients; returns
    (outputs, those leaves). A confident wrong prediction taken to the edge of what fp16 holds."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(outputs, torch.Tensor):
        leaf = _extreme(outputs, magnitude, generator)
        return leaf, [leaf]
    if not is_dataclass(outputs):
        raise TypeError(f"cannot find the logits in {type(outputs).__name__}")
    leaves = {f.name: _extreme(getattr(outputs, f.name), magnitude, generator)
              for f in fields(outputs) if f.name.endswith("logits")}
    return replace(outputs, **leaves), list(leaves.values())


def extreme_objective(model: torch.nn.Module, faces: torch.Tensor, targets: torch.Tensor,
                      scene: torch.Tensor | None, dtype: torch.dtype, magnitude: float = 1e4) -> dict[str, bool]:
    """Run `model`'s objective under `dtype` autocast (on the inputs' device) with extreme logits and backpropagate
    to them: {"total": finite, each term: finite, "gradients": every logit gradient finite}."""
    with torch.autocast(faces.device.type, dtype=dtype):
        outputs, leaves = extreme_logits(model_outputs(model, faces, scene), magnitude)
        out = model_objective(model, outputs, targets)
    grads = torch.autograd.grad(out.total, leaves, allow_unused=True)
    finite = {"total": bool(torch.isfinite(out.total).all())}
    finite |= {name: bool(torch.isfinite(term).all()) for name, term in out.terms.items()}
    finite["gradients"] = all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    return finite
