"""Per-clip augmentation and normalisation. A clip is one torchvision `Video` [T, 3, H, W], so every random
parameter (crop box, flip, colour factors, rotation angle) is drawn once and applied to all its frames alike: the
expression changes over time, the camera does not.

What each method uses is its training recipe's `augment` block (models/configs/train/<method>.json, with the
paper's words and the reasons for the strengths the papers leave out): random resized crop or not, horizontal flip
or not, the brightness factor of the colour jitter, the rotation range. The crop's area and aspect range are
TSN's random sized crop (area 8-100 %, aspect 3/4-4/3), which DFER-CLIP's loaders use and the CLIP-DFER papers
build on. Mixup and FMix act on a batch (models/data/mixing.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

if TYPE_CHECKING:
    from models.recipes import Augment

@dataclass(frozen=True)
class ClipAugmentation:
    random_crop: bool = True  # random resized crop; False: the plain resize of testing
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction of the random resized crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    brightness: float = 0.5
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    rotation: float = 0.0  # degrees either way; 0: none


def augmentation_from_recipe(augment: "Augment") -> ClipAugmentation:
    """A recipe's `augment` block as the clip augmentation."""
    return ClipAugmentation(random_crop=augment.random_crop, flip_p=0.5 if augment.flip else 0.0,
                            brightness=augment.color_jitter, rotation=augment.rotation)


def augmentation_for(method: str | None) -> ClipAugmentation:
    """The augmentation of `method`'s paper recipe (DFEW's), or the default one for a method without a recipe."""
    from models.recipes import RECIPE_DIR, load_recipe

    if method is None or not (RECIPE_DIR / f"{method}.json").is_file():
        return ClipAugmentation()
    return augmentation_from_recipe(load_recipe(method, "dfew").augment)


def train_transform(image_size: int, augmentation: ClipAugmentation, mean: Sequence[float],
                    std: Sequence[float]) -> ClipTransform:
    if augmentation.random_crop:
        steps: list = [v2.RandomResizedCrop(image_size, scale=augmentation.crop_scale, ratio=augmentation.crop_ratio,
                                            antialias=True)]
    else:
        steps = [v2.Resize((image_size, image_size), antialias=True)]  # as in testing
    if augmentation.flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(augmentation.flip_p))
    if any((augmentation.brightness, augmentation.contrast, augmentation.saturation, augmentation.hue)):
        steps.append(v2.ColorJitter(augmentation.brightness, augmentation.contrast, augmentation.saturation,
                                    augmentation.hue))
    if augmentation.rotation > 0:
        steps.append(v2.RandomRotation(augmentation.rotation))
    return ClipTransform(v2.Compose([*steps, *_to_normalised_float(mean, std)]))


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> ClipTransform:
    """A plain resize to image_size x image_size, as DFER-CLIP's released test loader does
    (`Resize(size=(image_size, image_size))`): a non-square crop is squashed, not cut (a centre crop would drop its
    edges and give other numbers than the release's)."""
    return ClipTransform(v2.Compose([v2.Resize((image_size, image_size), antialias=True),
                                     *_to_normalised_float(mean, std)]))


def scene_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> ClipTransform:
    """The scene window: the whole frame squashed to image_size x image_size (as service.crops.crop_scene does at
    run time, so nothing outside the frame's edges is cut away), normalised like the faces. No random crop or
    colour change of its own: in training the only augmentation it gets is the face clip's flip, which
    ClipDataset draws once and applies to both windows."""
    return eval_transform(image_size, mean, std)


def _to_normalised_float(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


class ClipTransform:
    """uint8 [T, 3, H, W] -> float [T, 3, S, S]. A class rather than a closure so that a Dataset holding it can be
    pickled into DataLoader workers on platforms that spawn them."""

    def __init__(self, compose: v2.Compose):
        self.compose = compose

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[1] != 3:
            raise ValueError(f"expected a uint8 clip [T, 3, H, W], got {clip.dtype} {tuple(clip.shape)}")
        return self.compose(tv_tensors.Video(clip)).as_subclass(torch.Tensor)
