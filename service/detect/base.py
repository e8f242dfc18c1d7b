"""The face detector interface every backend implements."""

from __future__ import annotations

import math
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
    min_face: int = 0  # smallest face side (pixels of the image given to detect()) it reports
    # Whether searching a small crop costs less than the whole frame (the input follows the image's size). SCRFD's
    # fixed 640x640 input does not: service/detect/regions.py then searches the whole frame every time.
    searches_crops_cheaply: bool = True

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 image, best first."""

    def keeps(self, detection: Detection, height: int, width: int) -> bool:
        """Whether a face of a (height x width) frame is one this detector reports there, by size: detect() applies
        it to the frame it is given; region searches (service/detect/regions.py) apply it in the frame's pixels
        to faces found in a scaled crop."""
        return min(detection.box[2], detection.box[3]) >= self.min_face


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


def box_ious(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with each of boxes (all x1, y1, x2, y2)."""
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def apart(boxes: list[tuple[float, float, float, float]], iou: float) -> list[int]:
    """Indices of the boxes (x, y, w, h) kept when going through them in order and dropping each one that overlaps
    an already kept one by IoU > `iou`."""
    corners = np.array([(x, y, x + w, y + h) for x, y, w, h in boxes], np.float64).reshape(-1, 4)
    kept: list[int] = []
    for i in range(len(boxes)):
        if not kept or (box_ious(corners[i], corners[kept]) <= iou).all():
            kept.append(i)
    return kept


def keep_highest(faces: list[Detection], iou: float = 0.3) -> list[Detection]:
    """Faces of several searches as one list, best first: of faces whose boxes overlap by IoU > `iou`, the one of
    highest score (with its keypoints)."""
    faces = sorted(faces, key=lambda f: -f.score)
    return [faces[i] for i in apart([f.box for f in faces], iou)]


def crop_around(image: np.ndarray, box: tuple[float, float, float, float], scale: float,
                size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """A size x size crop centred on `box`, `scale` times its longest side (black beyond the frame), and how it maps
    the frame: crop pixel = frame pixel * zoom + offset. Shrunk with area interpolation (warpAffine has none: it
    would take every 1/zoom-th pixel, aliased), enlarged bilinearly; never more memory than the crop's."""
    x, y, w, h = box
    side = scale * max(w, h, 1e-6)
    zoom = size / side
    if zoom >= 1:
        offset = (size / 2 - zoom * (x + w / 2), size / 2 - zoom * (y + h / 2))
        matrix = np.array([[zoom, 0, offset[0]], [0, zoom, offset[1]]], np.float64)
        crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return crop, zoom, offset
    # The region's whole pixels: the part inside the frame resized into its place on a black canvas.
    n = max(1, math.ceil(side))
    x0, y0 = math.floor(x + w / 2 - n / 2), math.floor(y + h / 2 - n / 2)
    zoom = size / n
    crop = np.zeros((size, size) + image.shape[2:], image.dtype)
    height, width = image.shape[:2]
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(width, x0 + n), min(height, y0 + n)
    dx0, dy0, dx1, dy1 = (round((ix0 - x0) * zoom), round((iy0 - y0) * zoom), round((ix1 - x0) * zoom),
                          round((iy1 - y0) * zoom))
    if ix1 > ix0 and iy1 > iy0 and dx1 > dx0 and dy1 > dy0:
        part = cv2.resize(image[iy0:iy1, ix0:ix1], (dx1 - dx0, dy1 - dy0), interpolation=cv2.INTER_AREA)
        crop[dy0:dy1, dx0:dx1] = part.reshape(crop[dy0:dy1, dx0:dx1].shape)
    return crop, zoom, (-x0 * zoom, -y0 * zoom)


def from_crop(detection: Detection, zoom: float, offset: tuple[float, float]) -> Detection:
    """A face found in crop_around's crop, in the frame's pixels."""
    ox, oy = offset
    x, y, w, h = detection.box
    landmarks = (tuple(((px - ox) / zoom, (py - oy) / zoom) for px, py in detection.landmarks)
                 if detection.landmarks else None)
    return Detection(((x - ox) / zoom, (y - oy) / zoom, w / zoom, h / zoom), detection.score, landmarks)
