"""A check that tells a face from a background the detector took for one, for any detector with keypoints
(docs/DETECTION.md has the measurements): `keypoints_plausible`, the detector's keypoints in a face's geometry (the
eye line no steeper than a tilted head, nose and mouth below the eyes, the mouth below the nose, all of them on the
face's box). The second look at a candidate, BlazeFace's own, lives with it: service/detect/blazeface.py
`FaceLikeCrop`.
"""

from __future__ import annotations

import math

import numpy as np

from service.detect.base import Detection


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
