"""Decoding a recorded clip with PyAV: every frame, in order, with its timestamp; bad files become ClipError.

A clip is bounded by a `ClipBudget` (settings max_frame_side / max_frame_pixels / max_frame_aspect, as for live
frames, max_clip_seconds, max_clip_pixels): `ClipBudget.problem` refuses a clip from its container's header before
anything is decoded, and the decoder stops a clip whose header lied as soon as a decoded frame is over the frame
limits or the pixels decoded so far pass the budget (ClipOverBudget). Frames larger than the budget's working side
are scaled down by FFmpeg straight from the decoded picture, so no full-size BGR copy is ever made and the memory
of the analysis follows the working size, not the file's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from service.errors import ClipError
from service.ingest.frame_source import FrameLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source, counting every decoded frame
    t: float  # seconds from the start of the clip
    image: np.ndarray  # HxWx3 uint8, BGR (OpenCV's order)


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    width: int
    height: int
    fps: float
    duration: float | None  # seconds, when the container says
    frame_count: int | None  # when the container says


class ClipOverBudget(ClipError):
    """A clip over its decoding budget (answered 413 when its header says so, a failed job when decoding finds it)."""


@dataclass(frozen=True)
class ClipBudget:
    """What one clip may cost: each frame within `frame_limits`, at most `max_seconds` long, at most `max_pixels`
    decoded in all (frames x width x height: the decoding work, since every frame is decoded whatever is sampled);
    frames with a side over `work_side` are scaled to it for the analysis."""

    frame_limits: FrameLimits = FrameLimits()
    max_seconds: float | None = None
    max_pixels: float | None = None
    work_side: int | None = None

    @classmethod
    def of(cls, settings) -> ClipBudget:
        """From the service settings (service/config.py; taken as they are, to keep ingest free of the config)."""
        return cls(FrameLimits(settings.max_frame_side, settings.max_frame_pixels, settings.max_frame_aspect),
                   settings.max_clip_seconds, settings.max_clip_pixels, settings.clip_work_side)

    @staticmethod
    def frames_declared(info: ClipInfo) -> int | None:
        """How many frames the header says the clip has: its frame count or its duration times its rate, whichever
        is larger (a header may give one and not the other); None when it says neither."""
        counts = [info.frame_count or 0, round(info.duration * info.fps) if info.duration else 0]
        return max(counts) or None

    def problem(self, info: ClipInfo) -> str | None:
        """Why a clip with this header is refused before decoding, in one sentence naming the budget, or None."""
        frame_problem = self.frame_limits.problem(info.width, info.height)
        if frame_problem:
            return f"the clip's frames are over the frame limits: {frame_problem}"
        if self.max_seconds is not None and info.duration is not None and info.duration > self.max_seconds:
            return (f"the clip is {info.duration:.0f} s long; the limit is {self.max_seconds:.0f} s "
                    "(max_clip_seconds)")
        frames = self.frames_declared(info)
        if self.max_pixels is not None and frames is not None:
            if self.max_seconds is not None:
                frames = min(frames, math.ceil(self.max_seconds * info.fps))
            pixels = frames * info.width * info.height
            if pixels > self.max_pixels:
                return (f"the clip would decode {pixels / 1e9:.1f} gigapixels ({frames} frames of {info.width}x"
                        f"{info.height}); the decoding budget is {self.max_pixels / 1e9:g} gigapixels "
                        "(max_clip_pixels)")
        return None

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """The size a decoded frame is analysed at: itself, or scaled to work_side on its longer side (even sides,
        as FFmpeg's scaler prefers)."""
        if not self.work_side or max(width, height) <= self.work_side:
            return width, height
        scale = self.work_side / max(width, height)
        return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _open(path: Path):
    if not path.exists():
        raise ClipError(f"clip not found: {path}")
    if path.is_dir():
        raise ClipError(f"clip path is a directory, not a video file: {path}")
    if path.stat().st_size == 0:
        raise ClipError(f"clip is empty (0 bytes): {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise ClipError(f"not a readable video file: {path} ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:  # arbitrary bytes probed as a container whose metadata is not text
        raise ClipError(f"not a readable video file: {path} (unreadable container metadata)") from None
    if not container.streams.video:
        container.close()
        # e.g. random bytes that probe as an audio format: the same message as any other non-video upload
        raise ClipError(f"not a readable video file: {path} (no video stream)")
    if container.streams.video[0].codec_context is None:  # a damaged header naming no codec FFmpeg has (fuzzing)
        container.close()
        raise ClipError(f"not a readable video file: {path} (no decoder for its video stream)")
    return container


def probe_clip(path: str | Path) -> ClipInfo:
    path = Path(path)
    container = _open(path)
    try:
        return _info(path, container)
    finally:
        container.close()


def _info(path: Path, container) -> ClipInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    fps = float(rate) if rate else 25.0
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return ClipInfo(path=path, width=stream.codec_context.width, height=stream.codec_context.height, fps=fps,
                    duration=duration, frame_count=stream.frames or None)


class ClipDecoder:
    """Iterates over every frame of a clip. A clip that breaks half-way keeps the frames decoded so far (with a
    warning); a clip that yields no frame at all is a ClipError. With a `budget`, a clip whose header is over it is
    a ClipOverBudget at once, one whose frames turn out to be is one when decoding gets there, and frames are
    scaled to its working side (`work_size` is the size frames are handed on at, once one is decoded)."""

    def __init__(self, path: str | Path, budget: ClipBudget | None = None):
        self.path = Path(path)
        self.budget = budget
        self._container = _open(self.path)
        try:
            self.info = _info(self.path, self._container)
            problem = budget.problem(self.info) if budget is not None else None
            if problem:
                raise ClipOverBudget(problem)
        except BaseException:
            self._container.close()
            raise
        self.work_size = budget.scaled_size(self.info.width, self.info.height) if budget else (
            self.info.width, self.info.height)
        self.decode_error: str | None = None
        self.pixels_decoded = 0

    def __iter__(self) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        start: float | None = None
        try:
            for frame in self._container.decode(stream):
                t = frame.time if frame.time is not None else index / self.info.fps
                start = t if start is None else start
                yield Frame(index=index, t=max(0.0, t - start), image=self._image(frame))
                index += 1
        except av.FFmpegError as exc:
            self.decode_error = f"{self.path}: decoding stopped after {index} frames ({exc.strerror or type(exc).__name__})"
            if index == 0:
                raise ClipError(f"corrupt video, no frame could be decoded: {self.path}") from None
            log.warning(self.decode_error)
        finally:
            self._container.close()
        if index == 0:
            raise ClipError(f"video has no frames: {self.path}")

    def _image(self, frame: av.VideoFrame) -> np.ndarray:
        """The decoded picture as BGR at its working size; ClipOverBudget when the frame or the pixels decoded so
        far are over the budget (a header that lied)."""
        if self.budget is None:
            return frame.to_ndarray(format="bgr24")
        problem = self.budget.frame_limits.problem(frame.width, frame.height)
        if problem:
            raise ClipOverBudget(f"decoding stopped: the header said {self.info.width}x{self.info.height}, but a "
                                 f"frame is over the frame limits: {problem}")
        self.pixels_decoded += frame.width * frame.height
        if self.budget.max_pixels is not None and self.pixels_decoded > self.budget.max_pixels:
            raise ClipOverBudget(f"decoding stopped: the clip decodes past its budget of "
                                 f"{self.budget.max_pixels / 1e9:g} gigapixels (max_clip_pixels), more than its "
                                 "header said")
        width, height = self.budget.scaled_size(frame.width, frame.height)
        self.work_size = (width, height)
        if (width, height) == (frame.width, frame.height):
            return frame.to_ndarray(format="bgr24")
        return frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()
