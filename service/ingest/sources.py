"""What a `--source` names: a USB camera (index or device path), a network stream (RTSP/HTTP), a video file, or a
ROS 2 image topic (`ros:/camera/image_raw`, `ros:/camera/image_raw/compressed`)."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from service.errors import SourceError


class SourceKind(str, Enum):
    CAMERA = "camera"
    STREAM = "stream"
    FILE = "file"
    ROS = "ros"


@dataclass(frozen=True)
class SourceSpec:
    name: str  # what events call it: camera0, stream1, or the file's stem
    uri: str | int  # what OpenCV opens: an index, a device path, a URL or a file path; or a ROS topic
    kind: SourceKind


_STREAM = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)


def parse_source(text: str, position: int = 0, name: str | None = None) -> SourceSpec:
    """Pure parsing; a file that does not exist is a SourceError (a camera or URL is checked when opened).
    `name=` or a `name=uri` prefix sets the name."""
    text = text.strip()
    if not text:
        raise SourceError("empty source")
    if "=" in text and not _STREAM.match(text) and name is None:
        prefix, rest = text.split("=", 1)
        if re.fullmatch(r"[A-Za-z][\w-]*", prefix):
            return parse_source(rest, position, prefix)
    if text.startswith("ros:"):
        topic = "/" + text[4:].strip("/")
        if not re.fullmatch(r"(/[A-Za-z_][\w]*)+", topic):
            raise SourceError(f"source {text!r}: not a ROS topic name (ros:/camera/image_raw)")
        if importlib.util.find_spec("cyclonedds") is None:
            raise SourceError(f"source {text!r} needs the ros extra: pip install 'emotion-perception[ros]'")
        return SourceSpec(name or topic.strip("/").replace("/", "_"), topic, SourceKind.ROS)
    if text.isdigit():
        return SourceSpec(name or f"camera{text}", int(text), SourceKind.CAMERA)
    if text.startswith("/dev/video"):
        return SourceSpec(name or Path(text).name.replace("video", "camera"), text, SourceKind.CAMERA)
    if _STREAM.match(text):
        return SourceSpec(name or f"stream{position}", text, SourceKind.STREAM)
    path = Path(text).expanduser()
    if not path.is_file():
        raise SourceError(f"source {text!r} is neither a camera index, a /dev/video device, a URL, nor an existing "
                          "video file")
    return SourceSpec(name or path.stem, str(path), SourceKind.FILE)


def unique_names(specs: list[SourceSpec]) -> list[SourceSpec]:
    """Two sources with the same name get -2, -3 suffixes, so events stay attributable."""
    seen: dict[str, int] = {}
    out = []
    for spec in specs:
        count = seen.get(spec.name, 0) + 1
        seen[spec.name] = count
        out.append(spec if count == 1 else SourceSpec(f"{spec.name}-{count}", spec.uri, spec.kind))
    return out
