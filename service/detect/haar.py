"""OpenCV's frontal-face Haar cascade: shipped inside opencv-python 4.x, so it always works offline.

Weakest of the three (frontal faces only, no landmarks, no real score), hence the fallback.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from service.detect.base import Detection, FaceDetector, as_bgr, downscale, rescale
from service.errors import DetectorError

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class HaarFaceDetector(FaceDetector):
    name = "haar"

    def __init__(self, min_face: int = 40, max_side: int = 640, min_neighbors: int = 6):
        path = Path(cv2.data.haarcascades) / CASCADE_FILE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"cannot load the Haar cascade {path} (is opencv-python 4.x installed?)")
        self.min_face, self.max_side, self.min_neighbors = min_face, max_side, min_neighbors

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_bgr(image)
        if not image.size:
            return []
        small, scale = downscale(image, self.max_side)
        # No histogram equalisation: on this cascade it doubles false positives on textured backgrounds.
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        min_side = max(8, round(self.min_face / scale))
        boxes, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side))
        # The cascade gives no probability; the number of merged neighbours is the closest thing to one.
        found = [Detection(tuple(map(float, b)), float(n) / (float(n) + self.min_neighbors))
                 for b, n in zip(boxes, np.ravel(neighbours))]
        found.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return [rescale(d, scale) for d in found]
