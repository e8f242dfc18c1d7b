"""Turning a detected box into the model's input: a square face crop (and a scene crop for scene-aware models)."""

from __future__ import annotations

import cv2
import numpy as np


def square_box(box: tuple[float, float, float, float], margin: float) -> tuple[int, int, int]:
    """The square (x, y, side) around a box's centre, its longer side enlarged by `margin` on each side."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    return round(cx - side / 2), round(cy - side / 2), max(1, round(side))


def crop_face(image: np.ndarray, box: tuple[float, float, float, float], size: int, channels: int,
              margin: float = 0.2) -> np.ndarray:
    """size x size x channels uint8 crop (grey for 1 channel, RGB for 3). Parts outside the frame repeat the
    border, so a face at the edge keeps its proportions instead of being stretched."""
    x, y, side = square_box(box, margin)
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -x), max(0, -y)
    pad_r, pad_b = max(0, x + side - w), max(0, y + side - h)
    crop = image[max(0, y):min(h, y + side), max(0, x):min(w, x + side)]
    if pad_l or pad_t or pad_r or pad_b:
        crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (size, size), interpolation=interpolation)
    return to_channels(crop, channels)


def crop_scene(image: np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """The whole frame squashed to size x size: the scene context that OUS reads beside the face."""
    return to_channels(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), channels)


def to_channels(bgr: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
