"""Turning a detected box into the model's input: a square face crop (and a scene crop for scene-aware models).

A `CropPolicy` says how: side, colour, margin and whether the face is turned so the eyes are level. A bundle
declares the policy its model was trained with (bundle.json `crop`), and models.prepare and the service both crop
by it, so training crops and serving crops are made the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from service.bundle import CropSpec
from service.events import Box

Landmarks = tuple[tuple[float, float], ...]  # keypoints (x, y), the two eyes first


@dataclass(frozen=True)
class CropPolicy:
    size: int  # output side in pixels
    channels: int  # 1: grey, 3: RGB
    margin: float = 0.2  # the square face box enlarged by this fraction of its side on each side
    align: bool = False  # rotate about the face centre so the eyes are level (where the detector gives eyes)

    def crop(self, image: np.ndarray, box: Box, landmarks: Landmarks | None = None) -> np.ndarray:
        angle = eye_angle(landmarks) if self.align and landmarks else 0.0
        return crop_face(image, box, self.size, self.channels, self.margin, angle)


def declared_crop(crop: CropSpec | None, size: int, channels: int, default_margin: float) -> CropPolicy:
    """The crops a model takes: as its bundle declares them (`crop`, a service.bundle.CropSpec: margin, align), or,
    where nothing is declared (older bundles), `default_margin` and upright. The one place the service, export's
    real windows and models.prepare turn a declaration into a policy, so all three crop alike."""
    if crop is not None:
        return CropPolicy(size, channels, crop.margin, crop.align == "eyes")
    return CropPolicy(size, channels, default_margin)


def eye_angle(landmarks: Landmarks) -> float:
    """Degrees the line from the first to the second eye keypoint is turned from level (every detector lists the
    two eyes first, the image-left one first)."""
    (x0, y0), (x1, y1) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def square_box(box: tuple[float, float, float, float], margin: float) -> tuple[int, int, int]:
    """The square (x, y, side) around a box's centre, its longer side enlarged by `margin` on each side."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    return round(cx - side / 2), round(cy - side / 2), max(1, round(side))


def crop_face(image: np.ndarray, box: tuple[float, float, float, float], size: int, channels: int,
              margin: float = 0.2, angle: float = 0.0) -> np.ndarray:
    """size x size x channels uint8 crop (grey for 1 channel, RGB for 3). Parts outside the frame repeat the
    border, so a face at the edge keeps its proportions instead of being stretched. `angle` (degrees): the square
    is turned by it about the face centre first (an eye line at that angle comes out level)."""
    if angle:
        return to_channels(_rotated_crop(image, box, size, margin, angle), channels)
    return to_channels(_square_crop(image, box, size, margin), channels)


def _square_crop(image: np.ndarray, box: Box, size: int, margin: float) -> np.ndarray:
    x, y, side = square_box(box, margin)
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -x), max(0, -y)
    pad_r, pad_b = max(0, x + side - w), max(0, y + side - h)
    crop = image[max(0, y):min(h, y + side), max(0, x):min(w, x + side)]
    if pad_l or pad_t or pad_r or pad_b:
        crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def _rotated_crop(image: np.ndarray, box: Box, size: int, margin: float, angle: float) -> np.ndarray:
    # The upright square big enough to hold the turned one, at the output's scale, then turned about its centre.
    big = math.ceil(size * math.sqrt(2)) + 2
    region = _square_crop(image, box, big, ((1 + 2 * margin) * big / size - 1) / 2)
    matrix = cv2.getRotationMatrix2D((big / 2, big / 2), angle, 1.0)
    matrix[:, 2] += ((size - big) / 2, (size - big) / 2)
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_scene(image: np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """The whole frame squashed to size x size: the scene context that OUS reads beside the face."""
    return to_channels(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), channels)


def to_channels(bgr: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
