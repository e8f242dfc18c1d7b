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
    landmarks: tuple[tuple[float, float], ...] | None = None  # 5 points (eyes, nose, mouth corners) where known


class FaceDetector(ABC):
    name: str

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 image, best first."""


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
