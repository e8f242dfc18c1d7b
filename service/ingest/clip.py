"""Decoding a recorded clip with PyAV: every frame, in order, with its timestamp; bad files become ClipError."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from service.errors import ClipError

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
    warning); a clip that yields no frame at all is a ClipError."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._container = _open(self.path)
        self.info = _info(self.path, self._container)
        self.decode_error: str | None = None

    def __iter__(self) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        start: float | None = None
        try:
            for frame in self._container.decode(stream):
                t = frame.time if frame.time is not None else index / self.info.fps
                start = t if start is None else start
                yield Frame(index=index, t=max(0.0, t - start), image=frame.to_ndarray(format="bgr24"))
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
