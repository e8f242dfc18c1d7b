"""How well a face can be read, and why not: its size, whether it is cut off by the frame's edge, its sharpness
(the variance of the Laplacian of the face crop, grey, at SHARPNESS_SIDE pixels, so one scale for faces of any size),
and its head pose. The thresholds are settings (quality_*); docs/CONFIGURATION.md says how their defaults were
measured (bench people, "quality")."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.events import Box, FaceQuality, HeadPose, UncertainReason

SHARPNESS_SIDE = 64


@dataclass(frozen=True)
class QualityLimits:
    min_face_px: float
    min_sharpness: float
    max_yaw: float
    max_pitch: float
    max_outside: float  # share of the face box's area that may lie outside the frame


def face_px(box: Box) -> float:
    return float(max(box[2], box[3]))


def outside_share(box: Box, width: int, height: int) -> float:
    """The share of the box's area outside the frame."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return 1.0
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return 1.0 - inside_w * inside_h / (w * h)


def sharpness(image: np.ndarray, box: Box) -> float | None:
    """Variance of the Laplacian of the face box's grey crop scaled to SHARPNESS_SIDE (None: no pixels in it)."""
    height, width = image.shape[:2]
    x, y, w, h = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = image[y0:y1, x0:x1]
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return round(float(cv2.Laplacian(grey, cv2.CV_32F).var()), 1)


def face_quality(box: Box, sharp: float | None, pose: HeadPose | None) -> FaceQuality:
    return FaceQuality(face_px=round(face_px(box), 1), sharpness=sharp,
                       yaw=pose.yaw if pose else None, pitch=pose.pitch if pose else None)


def uncertain_reason(quality: FaceQuality, outside: float, pose_read: bool,
                     limits: QualityLimits) -> UncertainReason | None:
    """Why the face cannot be read (the first that applies, in this order), or None. `pose_read`: landmarks were
    read for the face, so a missing pose means that no head pose explains them (not a face seen well)."""
    if quality.face_px < limits.min_face_px:
        return "too_small"
    if outside > limits.max_outside:
        return "cut_off"
    if pose_read and (quality.yaw is None or abs(quality.yaw) > limits.max_yaw
                      or abs(quality.pitch) > limits.max_pitch):
        return "turned_away"
    if quality.sharpness is not None and quality.sharpness < limits.min_sharpness:
        return "blurred"
    return None
