"""Checks that tell a face from a background the detector took for one (docs/DETECTION.md has the measurements).

- `keypoints_plausible`: the detector's keypoints in a face's geometry: the eye line no steeper than a tilted head,
  nose and mouth below the eyes, the mouth below the nose, all of them on the face's box.
- `FaceLikeCrop`: a second look at a candidate: the crop around its box, scaled so the face is a third of BlazeFace
  full range's own 192x192 input (the scale the model was trained for), searched again. A real face scores high at
  any size it was found at; backgrounds that looked like faces at one scale (galaxies, a building, a collar) rarely
  do. The tracker runs it on the first frames of a track only (service/track/confirm.py).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from service.detect.base import Detection, crop_around


def keypoints_plausible(detection: Detection, max_roll: float) -> bool:
    """Eyes, nose and mouth (BlazeFace's 6 points or the 5 of SCRFD and YuNet, the image-left eye first) where a
    face has them. A detection without keypoints passes (Haar has none)."""
    points = detection.landmarks
    if not points or len(points) < 4:
        return True
    p = np.asarray(points, np.float64)
    eyes = p[1] - p[0]
    roll = math.degrees(math.atan2(eyes[1], eyes[0]))
    if abs(roll) > max_roll:
        return False
    # In the face's upright frame (x along the eye line, y down), in units of the box side.
    side = max(detection.box[2], 1e-6)
    ux = np.array([math.cos(math.radians(roll)), math.sin(math.radians(roll))])
    uy = np.array([-ux[1], ux[0]])
    upright = (p - (p[0] + p[1]) / 2) @ np.stack([ux, uy], 1) / side
    nose_y = upright[2, 1]
    mouth_y = upright[3:5, 1].mean() if len(p) == 5 else upright[3, 1]  # SCRFD/YuNet: two mouth corners
    if not (0 < nose_y < mouth_y):
        return False
    x, y, w, h = detection.box
    inside = ((p[:, 0] >= x - 0.25 * w) & (p[:, 0] <= x + 1.25 * w) & (p[:, 1] >= y - 0.25 * h)
              & (p[:, 1] <= y + 1.25 * h))
    return bool(inside.all())


class FaceLikeCrop:
    """BlazeFace full range's score for a face at the centre of a crop `scale` times the candidate's box side,
    scaled to the model's own input (0: nothing face-like there)."""

    def __init__(self, scale: float = 3.0, threads: int = 1):
        from service.detect.blazeface import BlazeFaceFaceDetector

        self.scale = scale
        self.model = BlazeFaceFaceDetector("full", score=0.0, min_face=1, threads=threads)
        self.size = self.model.config.input_size

    def crop(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        return crop_around(image, box, self.scale, self.size)[0]

    def score(self, image: np.ndarray, box: tuple[float, float, float, float]) -> float:
        from service.detect.blazeface import decode, ssd_anchors

        crop = self.crop(image, box)
        tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(2 / 255) - np.float32(1)
        found = decode(*self.model.raw_outputs(tensor), ssd_anchors(self.model.config, self.size, self.size), 0.05)
        # The candidate's face sits at the centre, a third of the crop: a face found within a fraction of that
        # face's side from the centre is the same one (not a neighbour in the crop).
        reach = self.size / self.scale
        return max((f.score for f in found if abs(f.box[0] + f.box[2] / 2 - self.size / 2) < 0.35 * reach
                    and abs(f.box[1] + f.box[3] / 2 - self.size / 2) < 0.45 * reach), default=0.0)
