"""The training objective: the method's own loss (every term of its paper's objective) against class-probability
targets, so that label smoothing and mixup/FMix reach every term that reads the labels."""

from __future__ import annotations

import torch

from models.data.mixing import smooth_targets
from models.losses import model_loss


class TrainingObjective(torch.nn.Module):
    """What DDP wraps: the training loss as the module's forward, so DDP sees every step (its gradient hooks and
    unused-parameter tracking need the forward to go through it).

    forward(faces, targets, scene) -> (total, {term name: detached value}, logits); `targets` are class probabilities
    [B, C] (one-hot, or mixed by mixup/FMix), smoothed here by the recipe's label smoothing. A model without its
    own `loss` trains plain cross-entropy (term `L_ce`)."""

    def __init__(self, model: torch.nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.model, self.label_smoothing = model, label_smoothing

    def forward(self, faces: torch.Tensor, targets: torch.Tensor, scene: torch.Tensor | None = None):
        targets = smooth_targets(targets, self.label_smoothing)
        out = model_loss(self.model, faces, targets, scene)
        return out.total, {name: term.detach() for name, term in out.terms.items()}, out.logits
