"""What the live capture loop (service/ingest/capture.py) may ask of an opened source: the `FrameSource` protocol,
and its implementation over OpenCV's VideoCapture (cameras, network streams, files). ROS image topics implement it
in service/ros/images.py.

A source takes the next frame with `grab()` and decodes it with `retrieve()`, so frames the sampler drops are never
decoded. Neither raises for what the source sends: a frame that cannot be used (broken, undecodable, of a size or
shape the service refuses) is a `Skip` with a reason, which the capture loop counts and moves past. `grab()`
returns within about POLL_S when nothing arrives (`Grab.IDLE`), so the loop can look at its stop flag whatever the
source does; only a call the source cannot interrupt (OpenCV reading a camera) may take longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import cv2
import numpy as np


class Grab(str, Enum):
    FRAME = "frame"  # a frame was taken: retrieve() decodes it
    IDLE = "idle"  # nothing arrived yet; the source is still there (`waiting` may say why)
    SKIPPED = "skipped"  # something arrived that is no usable frame (`last_skip` says why); the source goes on
    ENDED = "ended"  # the source ended or failed (`failure` says why): the capture reopens it


@dataclass(frozen=True)
class Skip:
    """Why a message or frame was skipped: `reason` is one of a few fixed words (counted per reason in /v1/state),
    `detail` one line about this one (escaped and shortened where it quotes what the source sent)."""

    reason: str
    detail: str


# The fixed reasons a frame is skipped for.
MALFORMED = "malformed"  # not a message of the topic's type
BROKEN = "broken"  # pixels that do not add up (too few bytes, odd width for YUV 4:2:2, zero size)
UNDECODABLE = "undecodable"  # compressed bytes that do not decode
UNSUPPORTED = "unsupported"  # an encoding or format the service cannot convert
REFUSED_SIZE = "refused_size"  # larger than max_frame_side / max_frame_pixels, or an absurd aspect ratio


@dataclass(frozen=True)
class FrameLimits:
    """The largest frame a live source may hand on (settings max_frame_side, max_frame_pixels, max_frame_aspect):
    checked on the declared size, before anything is decoded or allocated where the source has a header."""

    max_side: int = 4096
    max_pixels: int = 4096 * 2304
    max_aspect: float = 8.0

    def problem(self, width: int, height: int) -> str | None:
        """Why a frame of this size is refused, or None (pure)."""
        if width <= 0 or height <= 0:
            return f"a {width}x{height} frame has no pixels"
        if max(width, height) > self.max_side:
            return f"a {width}x{height} frame is over max_frame_side {self.max_side}"
        if width * height > self.max_pixels:
            return f"a {width}x{height} frame is over max_frame_pixels {self.max_pixels}"
        if max(width, height) / min(width, height) > self.max_aspect:
            return f"a {width}x{height} frame is over max_frame_aspect {self.max_aspect:g}"
        return None


def quoted(text: object, limit: int = 40) -> str:
    """Something a source sent, safe to put in a log line or /v1/state: escaped like a Python literal (no control
    characters, no newlines) and cut to `limit` characters."""
    shown = repr(str(text))
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


class FrameSource(Protocol):
    """An opened source, as the capture loop sees it."""

    failure: str | None  # why it cannot deliver (it did not open, or it ended); None while it works
    last_skip: Skip | None  # why the last grab() or retrieve() skipped

    def is_open(self) -> bool: ...

    def frame_rate(self) -> float:
        """The pace a recorded file plays at, in frames per second; 0 for sources that deliver at their own."""
        ...

    def grab(self) -> Grab:
        """Take the next frame without decoding it; IDLE within about POLL_S when nothing came."""
        ...

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame as BGR uint8, or None when it cannot be used (`last_skip` says why)."""
        ...

    def stamp(self) -> object | None:
        """The source's own stamp of the frame grabbed last (a ROS header), or None."""
        ...

    def waiting(self) -> str | None:
        """While grab() is IDLE: what the source waits for, when it knows (e.g. no publisher on a topic)."""
        ...

    def release(self) -> None: ...


class OpenCvSource:
    """A camera, network stream or file through cv2.VideoCapture. OpenCV allocates each frame itself, so the size
    limits are checked on the stream's declared size at open (a stream that declares too large a frame does not
    open) and on every decoded frame."""

    def __init__(self, capture: cv2.VideoCapture, what: str, limits: FrameLimits, is_file: bool = False):
        self._capture, self.what, self.limits, self.is_file = capture, what, limits, is_file
        self.failure: str | None = None
        self.last_skip: Skip | None = None
        if not capture.isOpened():
            self.failure = f"cannot open {what}"
            return
        width, height = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        problem = limits.problem(width, height) if width and height else None  # 0: not known before a frame
        if problem:
            self.failure = f"{what}: {problem}"

    def is_open(self) -> bool:
        return self.failure is None

    def frame_rate(self) -> float:
        if not self.is_file:
            return 0.0
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return fps if fps and 0 < fps <= 1000 else 25.0

    def grab(self) -> Grab:
        if self._capture.grab():
            return Grab.FRAME
        self.failure = f"{self.what} stopped delivering frames"
        return Grab.ENDED

    def retrieve(self) -> np.ndarray | None:
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            self.last_skip = Skip(UNDECODABLE, f"{self.what}: a frame that did not decode")
            return None
        problem = self.limits.problem(image.shape[1], image.shape[0])
        if problem:
            self.last_skip = Skip(REFUSED_SIZE, f"{self.what}: {problem}")
            return None
        return image

    def stamp(self) -> object | None:
        return None

    def waiting(self) -> str | None:
        return None

    def release(self) -> None:
        self._capture.release()
