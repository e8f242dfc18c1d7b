"""What a `--source` names: a USB camera (index or device path), a network stream (RTSP/HTTP), a video file, or a
ROS 2 image topic (`ros:/camera/image_raw`, `ros:/camera/image_raw/compressed`)."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

    @property
    def shown(self) -> str:
        """The uri as state, logs, metrics and errors show it: a stream's credentials redacted."""
        return redact_uri(self.uri) if self.kind is SourceKind.STREAM else str(self.uri)

    def __repr__(self) -> str:  # never the password, even in a traceback or a debugger
        return f"SourceSpec(name={self.name!r}, uri={self.shown!r}, kind={self.kind.value})"


_STREAM = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
REDACTED = "***"
# Query parameters that carry a secret in camera URLs (tokens, passwords, signed-URL signatures).
_SECRET_PARAMS = re.compile(r"pass|pwd|token|secret|key|auth|sig|credential", re.IGNORECASE)


def redact_uri(uri: str | int) -> str:
    """A URL with its password and any secret-looking query value replaced by *** (pure); anything else as it is.
    `rtsp://admin:hunter2@10.0.0.7/live?token=abc` -> `rtsp://admin:***@10.0.0.7/live?token=***`."""
    text = str(uri)
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, REDACTED if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not even parseable as a URL: show nothing of it but its scheme
        return text.split("://", 1)[0] + "://" + REDACTED


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
    """Sources that share a name get -2, -3 suffixes (the first keeps it), never a name another source has, so
    events stay attributable: `a, a, a-2` -> `a, a-3, a-2`."""
    taken = {spec.name for spec in specs}
    seen: set[str] = set()
    out = []
    for spec in specs:
        name, count = spec.name, 1
        while name in seen or (count > 1 and name in taken):
            count += 1
            name = f"{spec.name}-{count}"
        seen.add(name)
        out.append(spec if name == spec.name else SourceSpec(name, spec.uri, spec.kind))
    return out
