"""Batch-level mixing: mixup (Zhang et al., 2017) and FMix (Harris et al., 2020), as PE-CLIP and DK-CLIP train.

Both take a batch of clips [B, T, 3, H, W] and soft targets [B, C] and return the mixed batch with mixed targets
(each row still sums to 1). One partner permutation and one mixing ratio per batch, as both reference
implementations do. FMix's mask is 2-D and shared by all frames of a clip, so a mixed clip stays temporally
coherent (the same face regions come from the same partner in every frame).

Per batch, draw p ~ U(0, 1): p < mixup_p: mixup; mixup_p <= p < mixup_p + fmix_p: FMix; else nothing. The
probabilities, alphas and FMix's decay power are the training recipe's (`mixup`, `fmix`, `mixup_alpha`, `fmix_alpha`,
`fmix_decay_power`): PE-CLIP's paper gives 0.4 / 0.3 and alpha 0.4 (sec. 4.2), DK-CLIP's authors' code mixes every
batch, FMix or mixup 50/50. Label smoothing (`smooth_targets`) applies to the mixed targets, as timm's mixup does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from models.recipes import Recipe


@dataclass(frozen=True)
class BatchMixing:
    mixup_p: float = 0.4  # share of batches mixed with mixup
    fmix_p: float = 0.3  # share mixed with FMix (the rest stays as it is)
    mixup_alpha: float = 0.4
    fmix_alpha: float = 1.0
    fmix_decay_power: float = 3.0


def mixing_from_recipe(recipe: "Recipe") -> BatchMixing | None:
    """The recipe's mixup/FMix, or None when it mixes nothing."""
    if not (recipe.mixup or recipe.fmix):
        return None
    defaults = BatchMixing()
    return BatchMixing(mixup_p=recipe.mixup, fmix_p=recipe.fmix,
                       mixup_alpha=recipe.mixup_alpha or defaults.mixup_alpha,
                       fmix_alpha=recipe.fmix_alpha or defaults.fmix_alpha,
                       fmix_decay_power=recipe.fmix_decay_power or defaults.fmix_decay_power)


def mixing_for(method: str | None) -> BatchMixing | None:
    """The batch mixing of `method`'s paper recipe (DFEW's), or None for methods that train without it."""
    from models.recipes import RECIPE_DIR, load_recipe

    if method is None or not (RECIPE_DIR / f"{method}.json").is_file():
        return None
    return mixing_from_recipe(load_recipe(method, "dfew"))


def smooth_targets(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label smoothing on class probabilities [B, C]: (1 - eps) targets + eps / C (each row still sums to 1)."""
    if not smoothing:
        return targets
    return targets * (1 - smoothing) + smoothing / targets.shape[-1]


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), num_classes).float()


def mixup(faces: torch.Tensor, targets: torch.Tensor, alpha: float,
          rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    rng = rng if rng is not None else np.random.default_rng()
    lam = float(rng.beta(alpha, alpha))
    partner = torch.from_numpy(rng.permutation(faces.shape[0])).to(faces.device)
    return lam * faces + (1 - lam) * faces[partner], lam * targets + (1 - lam) * targets[partner]


def fmix_mask(height: int, width: int, lam: float, decay_power: float,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """A binary [H, W] mask whose ones cover round(lam * H * W) pixels in a few smooth blobs: the top pixels of a
    random image with a 1 / f^decay_power spectrum (low frequencies dominate, hence large connected regions)."""
    rng = rng if rng is not None else np.random.default_rng()
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx ** 2 + fy ** 2)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
    spectrum = scale * (rng.standard_normal(freqs.shape) + 1j * rng.standard_normal(freqs.shape))
    grey = np.fft.irfft2(spectrum, s=(height, width))
    ones = int(round(lam * height * width))
    mask = np.zeros(height * width, dtype=np.float32)
    mask[np.argsort(grey, axis=None)[::-1][:ones]] = 1.0
    return mask.reshape(height, width)


def fmix(faces: torch.Tensor, targets: torch.Tensor, alpha: float, decay_power: float,
         rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    rng = rng if rng is not None else np.random.default_rng()
    lam = float(rng.beta(alpha, alpha))
    height, width = faces.shape[-2:]
    host_mask = fmix_mask(height, width, lam, decay_power, rng)
    share = float(host_mask.mean())  # the share actually taken from each clip itself (lam, up to rounding)
    # Drawn with numpy on the host, the mask goes to the frames' device (a CPU mask times CUDA frames raises).
    mask = torch.from_numpy(host_mask).to(faces.device, faces.dtype)
    partner = torch.from_numpy(rng.permutation(faces.shape[0])).to(faces.device)
    return mask * faces + (1 - mask) * faces[partner], share * targets + (1 - share) * targets[partner]


def mix_batch(faces: torch.Tensor, labels: torch.Tensor, num_classes: int, mixing: BatchMixing | None,
              rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(faces, soft targets [B, C], "mixup" | "fmix" | "none"). Without mixing the targets are one-hot, so a
    training loop can always use soft_cross_entropy."""
    targets = one_hot(labels, num_classes)
    if mixing is None:
        return faces, targets, "none"
    rng = rng if rng is not None else np.random.default_rng()
    p = rng.random()
    if p < mixing.mixup_p:
        return (*mixup(faces, targets, mixing.mixup_alpha, rng), "mixup")
    if p < mixing.mixup_p + mixing.fmix_p:
        return (*fmix(faces, targets, mixing.fmix_alpha, mixing.fmix_decay_power, rng), "fmix")
    return faces, targets, "none"


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (mixed or one-hot), averaged over the batch."""
    return torch.nn.functional.cross_entropy(logits, targets)  # probabilities as targets since torch 1.10
