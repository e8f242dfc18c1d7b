"""The model side of training objectives: targets as class probabilities, and the one cross-entropy objective that
several methods share.

A method's `loss(faces, targets, scene=None)` takes `targets` as class indices [B] or as class probabilities [B, C]
(one-hot, label-smoothed, or mixed by mixup/FMix). Every term that reads the labels is linear in the target
distribution, so on a mixed batch each term is the lambda-weighted sum of that term over the two label sets, as the
authors of DK-CLIP train (their code feeds the mixed, smoothed targets to every term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.registry import LossOutput


def class_probabilities(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[B] class indices -> one-hot [B, C]; [B, C] probabilities pass through."""
    if targets.dim() == 1:
        return F.one_hot(targets.long(), num_classes).to(torch.float32)
    return targets


def soft_nll(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of log-probabilities [B, C] against class indices or probabilities, batch mean."""
    return -(class_probabilities(targets, log_probs.shape[-1]).to(log_probs.dtype) * log_probs).sum(-1).mean()


class CrossEntropyObjective:
    """The objective of a method whose paper trains plain cross-entropy on its logits (DuSE eq. 1, CLIP-guided DFER
    eq. 12, PE-CLIP sec. 3.4): mix it into the model class before nn.Module."""

    def loss(self, faces: torch.Tensor, targets: torch.Tensor, scene: torch.Tensor | None = None) -> LossOutput:
        logits = self(faces, scene)
        ce = F.cross_entropy(logits, targets)  # class indices or probabilities alike
        return LossOutput(ce, {"L_ce": ce}, logits)
