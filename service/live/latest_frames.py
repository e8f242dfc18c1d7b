"""The latest sampled frame of each live source with the faces tracked in it, for the browser view.

In memory only, one frame per source, never written anywhere. The face worker hands over a reference to each frame
it has processed (no copy, no encoding); a frame is JPEG-encoded only when someone asks for it, at most `max_fps`
times a second per source however many viewers ask (they share the last encoding), and never larger than
`max_side` pixels on its longest side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from service.detect.base import as_bgr
from service.events import Box


@dataclass(frozen=True)
class ViewFace:
    """A tracked face as the view draws it (service.track's TrackedFace without the detection's details)."""

    track_id: int
    box: Box  # x, y, width, height in the frame's pixels


@dataclass(frozen=True)
class FaceLabel:
    label: str | None
    confidence: float | None


@dataclass
class _Latest:
    t: float
    image: np.ndarray  # BGR uint8, as captured
    faces: list[ViewFace]
    jpeg: bytes | None = None
    encoded_t: float | None = None  # the frame time of `jpeg`
    encoded_at: float = float("-inf")  # monotonic clock time of the last encoding


class LatestFrames:
    def __init__(self, max_fps: float, max_side: int, jpeg_quality: int, clock: Callable[[], float]):
        self.min_interval = 1.0 / max_fps
        self.max_side, self.jpeg_quality, self.clock = max_side, jpeg_quality, clock
        self._lock = threading.Lock()
        self._latest: dict[str, _Latest] = {}
        self.encoded = 0  # JPEG encodings so far (all sources)

    def put(self, source: str, t: float, image: np.ndarray, faces: list[ViewFace]) -> None:
        """Called by the face worker for every frame it processed; only keeps references."""
        with self._lock:
            previous = self._latest.get(source)
            latest = _Latest(t, image, faces)
            if previous is not None:  # keep the last encoding so that the rate bound holds across new frames
                latest.jpeg, latest.encoded_t, latest.encoded_at = previous.jpeg, previous.encoded_t, previous.encoded_at
            self._latest[source] = latest

    def jpeg(self, source: str, labels: Callable[[], dict[int, FaceLabel]]) -> tuple[bytes, float] | None:
        """The latest frame of `source` with each face's box, track id, label and confidence drawn on it, as JPEG
        bytes and the frame's time; None if the source has delivered no frame yet. `labels` gives each track's
        current label (called only when a new encoding is due)."""
        with self._lock:
            latest = self._latest.get(source)
            if latest is None:
                return None
            now = self.clock()
            if latest.jpeg is not None and (latest.encoded_t == latest.t or now - latest.encoded_at < self.min_interval):
                return latest.jpeg, latest.encoded_t
            # Claim this encoding slot before releasing the lock, so concurrent viewers do not encode the same frame.
            latest.encoded_at = now
            t, image, faces = latest.t, latest.image, latest.faces
        data = encode_view(image, faces, labels(), self.max_side, self.jpeg_quality)
        with self._lock:
            self.encoded += 1
            current = self._latest[source]
            if current.encoded_t is None or t >= current.encoded_t:
                current.jpeg, current.encoded_t = data, t
        return data, t


def encode_view(image: np.ndarray, faces: list[ViewFace], labels: dict[int, FaceLabel], max_side: int,
                quality: int) -> bytes:
    """Shrink to max_side, draw each face's box and caption ('#3 happy 0.81'), encode as JPEG."""
    image = as_bgr(image)  # grey or BGRA frames too: the boxes keep their track's colour
    scale = min(1.0, max_side / max(image.shape[:2]))
    canvas = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 320))
    for face in faces:
        x, y, w, h = (round(v * scale) for v in face.box)
        face_label = labels.get(face.track_id)
        caption = f"#{face.track_id}"
        if face_label is not None and face_label.label is not None:
            caption += f" {face_label.label} {face_label.confidence:.2f}"
        colour = _track_colour(face.track_id)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
        (text_w, text_h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y - text_h - baseline - 4)
        cv2.rectangle(canvas, (x, top), (x + text_w + 6, top + text_h + baseline + 4), colour, cv2.FILLED)
        cv2.putText(canvas, caption, (x + 3, top + text_h + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    ok, buffer = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


# The page colours tracks with the same palette (static/view.js), so a box and its chart match. BGR.
_PALETTE = [(75, 180, 60), (48, 130, 245), (200, 130, 0), (180, 30, 145), (60, 20, 220), (0, 210, 255),
            (240, 240, 70), (195, 0, 240)]


def _track_colour(track_id: int) -> tuple[int, int, int]:
    return _PALETTE[track_id % len(_PALETTE)]
