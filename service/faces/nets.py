"""face-api.js's 68-point landmark net and its face recognition net (128-d descriptors), embedded: ONNX graphs
converted at build time from npm `@vladmandic/face-api` 1.7.15 (MIT; export/faceapi_faces.py, `make faces`) and
shipped in service/assets/faces, run by ONNX Runtime (no PyTorch, no TensorFlow.js at run time).

What the nets read:

- landmarks: the square around the detector's box (face-api pastes its detector's box onto a black square,
  centred: the same for a square box), resized to 112 px as TensorFlow.js resizes (`tf.image.resizeBilinear`,
  align_corners and half_pixel_centers off, as face-api's NetInput.toBatchTensor does on tensors): exactly what
  face-api's net sees. The 68 points come back relative to that square and are mapped back to frame pixels.
- descriptors (`align="level"`, the default): face-api's aligned square (FaceLandmarks.alignDlib, as face-api uses it
  for descriptors: side = mean eye-to-mouth distance / 0.45, the centre of the eyes and mouth at (0.5, 0.43) of it),
  turned so the eyes are level, warped straight to 150 px (one bilinear interpolation). face-api itself does not
  turn the square (`align="faceapi"`: its square cut and resized as TensorFlow.js does, exactly what face-api's net
  sees). Levelling was chosen on CK+ faces of even-numbered subjects only (bench/face_matching.py): with heads
  tilted by 20 degrees it keeps misses at 11% where face-api's square misses 51% (at 1% false matches), and upright
  it misses 4% against 6%.

Where a square reaches past the frame's edge the missing part is black, as the centred padding is black: face-api
instead shifts the aligned square inside the frame ("TODO: pad in case rectangle is out of image bounds"), which
moves the face in its input. Descriptors are compared by Euclidean distance as face-api's `euclideanDistance`;
face-api's FaceMatcher calls two faces the same person below 0.6 (bench/face_matching.py measures ours).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from service.errors import ServiceError
from service.onnx_session import cpu_session

FACES_DIR = Path(__file__).resolve().parent.parent / "assets" / "faces"
LANDMARK_FILE = "landmark68.onnx"
RECOGNITION_FILE = "recognition.onnx"
PROVENANCE_FILE = "PROVENANCE.json"
LANDMARK_INPUT_SIZE = 112
RECOGNITION_INPUT_SIZE = 150
LANDMARK_POINTS = 68
DESCRIPTOR_SIZE = 128
FACEAPI_MATCH_DISTANCE = 0.6  # face-api's FaceMatcher default distanceThreshold
# Measured by bench/face_matching.py (docs/FACES.md): the largest distance with at most 1% false matches on CK+48
# faces of even-numbered subjects; held out, 1.1% false matches and 7.6% misses (odd subjects, other expressions)
MEASURED_MATCH_DISTANCE = 0.55
HOW_TO_GET = "re-create it with `make faces` (converts face-api.js's nets from npm @vladmandic/face-api 1.7.15)"
# FaceLandmarks.ts alignment constants: the eye-and-mouth centre sits at (0.5, 0.43) of a square 1/0.45 times the
# mean eye-to-mouth distance
ALIGN_X, ALIGN_Y, ALIGN_SCALE = 0.5, 0.43, 0.45
LEFT_EYE, RIGHT_EYE, MOUTH = slice(36, 42), slice(42, 48), slice(48, 68)


class FaceNetsError(ServiceError):
    """The landmark or recognition graph is missing or unreadable, or an input cannot be used."""


def resize_bilinear_tf(image: np.ndarray, size: int) -> np.ndarray:
    """[H, W, C] -> [size, size, C] float32 as tfjs-core's resizeBilinear with align_corners and half_pixel_centers
    off: source = destination * (input / output), the two neighbours floor and ceil, in double precision. Rows are
    blended first, on the needed rows only (TensorFlow.js blends columns first; in double precision the float32
    results come out the same, tests/test_faces_conversion.py, and this is three times faster)."""

    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.arange(size) * (n_in / size)
        low = np.floor(source).astype(np.intp)
        return low, np.minimum(np.ceil(source).astype(np.intp), n_in - 1), source - low

    rows_lo, rows_hi, row_frac = axis(image.shape[0])
    cols_lo, cols_hi, col_frac = axis(image.shape[1])
    top, bottom = image[rows_lo].astype(np.float64), image[rows_hi].astype(np.float64)
    rows = top + (bottom - top) * row_frac[:, None, None]
    left, right = rows[:, cols_lo], rows[:, cols_hi]
    return (left + (right - left) * col_frac[None, :, None]).astype(np.float32)


def cut_square(frame_bgr: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
    """The side x side RGB square at (x, y) of a BGR frame, black where it reaches past the frame."""
    height, width = frame_bgr.shape[:2]
    square = np.zeros((side, side, 3), np.uint8)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    if x1 > x0 and y1 > y0:
        square[y0 - y:y1 - y, x0 - x:x1 - x] = frame_bgr[y0:y1, x0:x1, ::-1]
    return square


def _frame(frame_bgr: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame_bgr)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise FaceNetsError(f"expected a BGR uint8 frame [height, width, 3], got {frame.dtype} {frame.shape}")
    return frame


def landmark_square(box: tuple[float, float, float, float]) -> tuple[int, int, int]:
    """(x, y, side) of the square around a face box (x, y, w, h) the landmark net reads."""
    x, y, w, h = (float(v) for v in box)
    if not (math.isfinite(x + y + w + h) and w > 0 and h > 0):
        raise FaceNetsError(f"face box {tuple(box)} is not a box (x, y, width, height with width, height > 0)")
    side = max(1, round(max(w, h)))
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side


def aligned_square(landmarks: np.ndarray) -> tuple[int, int, int]:
    """(x, y, side) of face-api's dlib-style aligned face square (FaceLandmarks.alignDlib) from 68 landmarks in
    frame pixels."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (LANDMARK_POINTS, 2) or not np.isfinite(points).all():
        raise FaceNetsError(f"expected 68 landmarks as a (68, 2) array of frame pixels, got shape {points.shape}")
    centres = np.stack([points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0), points[MOUTH].mean(0)])
    eye_to_mouth = (np.linalg.norm(centres[2] - centres[0]) + np.linalg.norm(centres[2] - centres[1])) / 2
    side = math.floor(eye_to_mouth / ALIGN_SCALE)
    if side < 1:
        raise FaceNetsError("the landmarks' eyes and mouth coincide: no face to align")
    reference = centres.mean(0)
    return math.floor(reference[0] - ALIGN_X * side), math.floor(reference[1] - ALIGN_Y * side), side


def eye_roll(landmarks: np.ndarray) -> float:
    """Degrees the line from the image-left eye's centre to the other eye's rises clockwise (image y points down):
    0 for level eyes."""
    points = np.asarray(landmarks, np.float64)
    dx, dy = points[RIGHT_EYE].mean(0) - points[LEFT_EYE].mean(0)
    return math.degrees(math.atan2(dy, dx))


def levelled_face(frame_bgr: np.ndarray, landmarks: np.ndarray, size: int = RECOGNITION_INPUT_SIZE) -> np.ndarray:
    """face-api's aligned square of a face (aligned_square), turned about its eye-and-mouth centre so the eyes are
    level, as a size x size float32 RGB image (black past the frame's edge)."""
    points = np.asarray(landmarks, np.float64)
    _, _, side = aligned_square(points)
    centre = np.stack([points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0), points[MOUTH].mean(0)]).mean(0)
    warp = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), eye_roll(points), size / side)
    warp[:, 2] += (ALIGN_X * size - centre[0], ALIGN_Y * size - centre[1])
    face = cv2.warpAffine(frame_bgr, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
    return face[:, :, ::-1].astype(np.float32)


def load_session(path: Path, threads: int = 1):
    """An ONNX Runtime session for one of the converted graphs; a missing or unreadable file is a FaceNetsError
    naming it and how to re-create it."""
    return cpu_session(path, threads, FaceNetsError, "face net", HOW_TO_GET)


class _PixelNet:
    """One converted graph: [N, S, S, 3] float RGB pixels in, [N, K] out."""

    def __init__(self, path: Path, size: int, outputs: int, threads: int):
        self.path = Path(path)
        self.size = size
        self.session = load_session(self.path, threads)
        (graph_input,), (graph_output,) = self.session.get_inputs(), self.session.get_outputs()
        if list(graph_input.shape[1:]) != [size, size, 3] or graph_output.shape[1:] != [outputs]:
            raise FaceNetsError(f"{self.path} is not the converted face-api net it should be (input "
                                f"{graph_input.shape}, output {graph_output.shape}; expected [N, {size}, {size}, 3] "
                                f"-> [N, {outputs}]): {HOW_TO_GET}")
        self.input_name, self.output_name = graph_input.name, graph_output.name

    def run(self, squares: list[np.ndarray]) -> np.ndarray:
        """RGB squares of any side -> the net's outputs, one row each (resized as TensorFlow.js resizes)."""
        return self.infer(np.stack([resize_bilinear_tf(square, self.size) for square in squares]))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """[N, S, S, 3] float32 RGB pixels -> [N, K]."""
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return out


class LandmarkNet:
    """face-api's FaceLandmark68Net: 68 points (x, y in frame pixels) of a face from its detector box."""

    def __init__(self, directory: str | Path = FACES_DIR, threads: int = 1):
        self.net = _PixelNet(Path(directory) / LANDMARK_FILE, LANDMARK_INPUT_SIZE, 2 * LANDMARK_POINTS, threads)

    def landmarks(self, frame_bgr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(68, 2) float32 frame pixels of the face in `box` (x, y, w, h), in face-api's iBUG 68-point order
        (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67)."""
        return self.landmarks_many(frame_bgr, [box])[0]

    def landmarks_many(self, frame_bgr: np.ndarray, boxes) -> np.ndarray:
        """(N, 68, 2) for N boxes of one frame, in one run of the net."""
        frame = _frame(frame_bgr)
        squares = [landmark_square(box) for box in boxes]
        if not squares:
            return np.zeros((0, LANDMARK_POINTS, 2), np.float32)
        relative = self.net.run([cut_square(frame, *square) for square in squares]).reshape(-1, LANDMARK_POINTS, 2)
        corners = np.array([(x, y) for x, y, _ in squares], np.float32)[:, None, :]
        sides = np.array([side for _, _, side in squares], np.float32)[:, None, None]
        return (relative * sides + corners).astype(np.float32)


class DescriptorNet:
    """face-api's FaceRecognitionNet: a 128-d descriptor of a face from its 68 landmarks (LandmarkNet). `align`:
    "level" (eyes levelled, the default: see the module's doc) or "faceapi" (face-api's own square, unturned)."""

    ALIGNMENTS = ("level", "faceapi")

    def __init__(self, directory: str | Path = FACES_DIR, threads: int = 1, align: str = "level"):
        if align not in self.ALIGNMENTS:
            raise FaceNetsError(f"unknown face alignment {align!r} (one of {', '.join(self.ALIGNMENTS)})")
        self.align = align
        self.net = _PixelNet(Path(directory) / RECOGNITION_FILE, RECOGNITION_INPUT_SIZE, DESCRIPTOR_SIZE, threads)

    def describe(self, frame_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(128,) float32 descriptor of the face whose (68, 2) landmarks are given in frame pixels."""
        return self.describe_many(frame_bgr, [landmarks])[0]

    def describe_many(self, frame_bgr: np.ndarray, landmarks) -> np.ndarray:
        """(N, 128) for N faces' landmarks of one frame, in one run of the net."""
        frame = _frame(frame_bgr)
        squares = [aligned_square(points) for points in landmarks]  # also checks each face's landmarks
        if not squares:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        if self.align == "faceapi":
            return self.net.run([cut_square(frame, *square) for square in squares]).astype(np.float32)
        return self.net.infer(np.stack([levelled_face(frame, points) for points in landmarks])).astype(np.float32)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Euclidean distance between descriptors (face-api's euclideanDistance); arrays of them broadcast along the
    last axis. Below about 0.6 face-api calls two faces one person."""
    distance = np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)
    return float(distance) if distance.ndim == 0 else distance


def provenance(directory: str | Path = FACES_DIR) -> dict:
    """PROVENANCE.json of the converted nets: source package, licence, sha256 of every file, parity figures."""
    path = Path(directory) / PROVENANCE_FILE
    if not path.is_file():
        raise FaceNetsError(f"{path} not found ({HOW_TO_GET})")
    return json.loads(path.read_text())
