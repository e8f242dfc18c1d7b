"""The face detector interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in pixels of the frame given to detect()
    score: float
    # 5 points (eyes, nose, mouth corners; SCRFD, YuNet) or 6 (eyes, nose tip, mouth, ear tragions; BlazeFace), the
    # image-left eye first, where known
    landmarks: tuple[tuple[float, float], ...] | None = None


class FaceDetector(ABC):
    name: str

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 image, best first."""


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any frame as 3-channel BGR uint8: grey (H x W or H x W x 1) and BGRA frames are converted, BGR ones pass."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {image.dtype}")
    if image.ndim in (2, 3) and not image.size and (image.ndim == 2 or image.shape[2] in (1, 3, 4)):
        return np.zeros((*image.shape[:2], 3), np.uint8)  # empty: OpenCV cannot convert it
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"a frame must be H x W (grey), H x W x 3 (BGR) or H x W x 4 (BGRA), got shape {image.shape}")


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk so its longest side is at most max_side, and the factor to map boxes back."""
    h, w = image.shape[:2]
    scale = max(h, w) / max_side
    if scale <= 1:
        return image, 1.0
    return cv2.resize(image, (round(w / scale), round(h / scale)), interpolation=cv2.INTER_AREA), scale


def rescale(detection: Detection, scale: float) -> Detection:
    if scale == 1.0:
        return detection
    x, y, w, h = detection.box
    landmarks = tuple((px * scale, py * scale) for px, py in detection.landmarks) if detection.landmarks else None
    return Detection((x * scale, y * scale, w * scale, h * scale), detection.score, landmarks)
