"""A ROS 2 image topic as a live source: `ros:/camera/image_raw` (sensor_msgs/Image) or a topic ending in
`/compressed` (sensor_msgs/CompressedImage, JPEG or PNG; image_transport's naming). `ImageTopicSource` is a
`FrameSource` (service/ingest/frame_source.py), so the live capture thread samples, queues and counts it like any
other source:

- grab() waits at most POLL_S for the next message and checks its header only: its encoding or format, its declared
  size against the frame limits (max_frame_side, max_frame_pixels, max_frame_aspect), whether its bytes add up.
  retrieve() converts it (only the sampled ones are: a 30 fps JPEG camera sampled at 8 fps decodes 8 images a
  second). Nothing a publisher sends raises out of either: a message that cannot be used is a `Skip` with a reason
  (malformed, broken, undecodable, unsupported, refused_size), counted by the capture, and the next one is read;
- a compressed image's size is read from its own header (JPEG's frame header, PNG's IHDR) before it is decoded, so
  a decompression bomb (a few hundred kB declaring 20000x20000 pixels) is refused without allocating it; formats
  other than JPEG and PNG are refused unread;
- DDS lifecycle samples (the publisher went away, the instance was disposed) are no images: grab() is IDLE, and
  `waiting()` says "no publisher" while none is matched. The reader stays: DDS discovery brings the next publisher
  (a camera driver restarting) without the source being reopened;
- `stamp()` is the header (stamp, frame_id) of the image grabbed last: outputs about that frame carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from cyclonedds.core import DDSException, InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.internal import InvalidSample
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from service.ingest.frame_source import (BROKEN, MALFORMED, REFUSED_SIZE, UNDECODABLE, UNSUPPORTED, FrameLimits,
                                         Grab, Skip, quoted)
from service.ros.dds import RosError, dds_topic_name, participant, sensor_qos
from service.ros.messages import CompressedImage, Image, Time
from service.threads import POLL_S

# sensor_msgs/image_encodings names -> (channels, OpenCV conversion to BGR or None). yuv422 is UYVY in ROS.
ENCODINGS: dict[str, tuple[int, int | None]] = {
    "bgr8": (3, None),
    "rgb8": (3, cv2.COLOR_RGB2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR),
    "yuv422": (2, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": (2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": (2, cv2.COLOR_YUV2BGR_YUY2),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# JPEG frame headers (SOF0-SOF15) are C0-CF, except DHT (C4), JPG (C8) and DAC (CC).
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class Unusable(ValueError):
    """A message that gives no frame, and why (a Skip): the source skips it and reads the next."""

    def __init__(self, skip: Skip):
        super().__init__(skip.detail)
        self.skip = skip


class UnsupportedEncoding(Unusable):
    """An image encoding or compressed format we cannot convert (e.g. bayer_rggb8, 16UC1, compressedDepth)."""

    def __init__(self, detail: str):
        super().__init__(Skip(UNSUPPORTED, detail))


class BrokenImage(Unusable):
    """A message whose pixels do not add up or do not decode."""

    def __init__(self, detail: str, reason: str = BROKEN):
        super().__init__(Skip(reason, detail))


@dataclass(frozen=True)
class ImageStamp:
    """The header of the image a frame came from."""

    stamp: Time
    frame_id: str


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's first frame header, walking its segments without decoding; None when the bytes
    are no JPEG or end before one (pure)."""
    if not data.startswith(JPEG_SOI):
        return None
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None  # not at a marker: no JPEG a decoder would read
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan, before any frame header
            return None
        length = int.from_bytes(data[i:i + 2], "big")
        if length < 2:
            return None
        if marker in JPEG_SOF:
            if i + 7 > end:
                return None
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 3:i + 5], "big")
        i += length
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when the bytes are no PNG (pure)."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def check_compressed(msg: CompressedImage, limits: FrameLimits) -> None:
    """Unusable unless the message is a JPEG or PNG of an accepted size, read from its own header (pure; the
    pixels are not decoded)."""
    if "compressedDepth" in msg.format:
        raise UnsupportedEncoding(f"compressed format {quoted(msg.format)} (a depth image) is not supported")
    data = msg.data if isinstance(msg.data, bytes) else bytes(msg.data)
    if data.startswith(JPEG_SOI):
        size, kind = jpeg_size(data), "JPEG"
    elif data.startswith(PNG_SIGNATURE):
        size, kind = png_size(data), "PNG"
    else:
        raise UnsupportedEncoding(f"{len(msg.data)} bytes of format {quoted(msg.format)} that are neither JPEG nor "
                                  "PNG")
    if size is None:
        raise BrokenImage(f"{len(msg.data)} bytes of {kind} without a readable image header", UNDECODABLE)
    problem = limits.problem(*size)
    if problem:
        raise BrokenImage(f"{kind}: {problem}", REFUSED_SIZE)


def check_raw(msg: Image, limits: FrameLimits) -> None:
    """Unusable unless the message's encoding is one we convert, its declared size is accepted and its bytes add
    up (pure; the pixels are not looked at)."""
    if msg.encoding not in ENCODINGS:
        raise UnsupportedEncoding(f"image encoding {quoted(msg.encoding)} is not supported (supported: "
                                  f"{', '.join(ENCODINGS)})")
    problem = limits.problem(msg.width, msg.height)
    if problem:
        raise BrokenImage(problem, REFUSED_SIZE)
    channels, _ = ENCODINGS[msg.encoding]
    described = f"{msg.width}x{msg.height} {msg.encoding} image with step {msg.step} and {len(msg.data)} bytes"
    if msg.step < msg.width * channels or len(msg.data) < msg.step * msg.height:
        raise BrokenImage(described)
    if channels == 2 and msg.width % 2:  # YUV 4:2:2 shares each chroma pair between two pixels
        raise BrokenImage(described + ": YUV 4:2:2 needs an even width")


def check_message(msg: Image | CompressedImage, limits: FrameLimits) -> None:
    """Unusable unless the message can be converted into a frame of an accepted size (pure)."""
    if isinstance(msg, CompressedImage):
        check_compressed(msg, limits)
    else:
        check_raw(msg, limits)


def image_to_bgr(msg: Image, limits: FrameLimits = FrameLimits()) -> np.ndarray:
    """sensor_msgs/Image -> BGR uint8 (pure); Unusable when it cannot be."""
    check_raw(msg, limits)
    channels, conversion = ENCODINGS[msg.encoding]
    row = msg.width * channels
    rows = np.frombuffer(msg.data, np.uint8, msg.step * msg.height).reshape(msg.height, msg.step)[:, :row]
    image = rows.reshape(msg.height, msg.width, channels) if channels > 1 else rows
    return np.ascontiguousarray(image) if conversion is None else cv2.cvtColor(image, conversion)


def compressed_to_bgr(msg: CompressedImage, limits: FrameLimits = FrameLimits()) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG) -> BGR uint8 (pure); Unusable when it cannot be."""
    check_compressed(msg, limits)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # the size its header declared, never turned
    try:
        image = cv2.imdecode(np.frombuffer(msg.data, np.uint8), flags)
    except cv2.error:
        image = None
    if image is None:
        raise BrokenImage(f"{len(msg.data)} bytes of {quoted(msg.format or 'unknown format')} that do not decode",
                          UNDECODABLE)
    return image


def message_type(topic: str) -> type:
    return CompressedImage if topic.rstrip("/").endswith("/compressed") else Image


class ImageTopicSource:
    """A FrameSource over a DDS reader of one image topic (best effort, keep last 1: only the newest image
    matters)."""

    def __init__(self, topic: str, limits: FrameLimits = FrameLimits(), poll_s: float = POLL_S):
        self.topic, self.limits, self.poll_s = topic, limits, poll_s
        self.type = message_type(topic)
        self.failure: str | None = None
        self.last_skip: Skip | None = None
        self._stamp: ImageStamp | None = None
        self._grabbed: Image | CompressedImage | None = None  # taken by grab(), converted by retrieve()
        self._reader = self._waitset = self._condition = None
        try:
            dp = participant()
            self._reader = DataReader(dp, Topic(dp, dds_topic_name(topic), self.type), qos=sensor_qos(self.type))
            self._condition = ReadCondition(self._reader, SampleState.NotRead | ViewState.Any | InstanceState.Any)
            self._waitset = WaitSet(dp)
            self._waitset.attach(self._condition)
        except (RosError, DDSException) as exc:
            self.failure = f"cannot read ROS topic {topic}: {exc}"

    def is_open(self) -> bool:
        return self._reader is not None and self.failure is None

    def frame_rate(self) -> float:
        return 0.0  # no fixed rate: images come as the publisher sends them

    def grab(self) -> Grab:
        self._grabbed = None
        if self._reader is None:
            return Grab.ENDED
        if self._waitset.wait(duration(seconds=self.poll_s)) == 0:
            return Grab.IDLE
        try:
            samples = self._reader.take(N=1, condition=self._condition)
        except DDSException as exc:  # the reader itself failed: reopened by the capture
            self.failure = f"ROS topic {self.topic}: {exc}"
            return Grab.ENDED
        except Exception as exc:  # the bytes are not a valid message of this type
            self.last_skip = Skip(MALFORMED, f"a message on {self.topic} that is no {self.type.__name__} "
                                  f"({type(exc).__name__})")
            return Grab.SKIPPED
        if not samples or isinstance(samples[0], InvalidSample):
            return Grab.IDLE  # nothing, or a lifecycle sample: a publisher gone, an instance disposed
        msg = samples[0]
        try:
            check_message(msg, self.limits)
        except Unusable as exc:
            self.last_skip = exc.skip
            return Grab.SKIPPED
        except Exception as exc:  # fields of the wrong type in a hand-made message
            self.last_skip = Skip(MALFORMED, f"a {self.type.__name__} on {self.topic} with unreadable fields "
                                  f"({type(exc).__name__})")
            return Grab.SKIPPED
        self._grabbed = msg
        self._stamp = ImageStamp(msg.header.stamp, msg.header.frame_id)
        return Grab.FRAME

    def retrieve(self) -> np.ndarray | None:
        msg, self._grabbed = self._grabbed, None
        if msg is None:
            return None
        try:
            if self.type is CompressedImage:
                return compressed_to_bgr(msg, self.limits)
            return image_to_bgr(msg, self.limits)
        except Unusable as exc:
            self.last_skip = exc.skip
            return None
        except Exception as exc:  # checked above; OpenCV failing on it anyway is still the message's fault
            self.last_skip = Skip(UNDECODABLE, f"an image on {self.topic} that did not convert ({type(exc).__name__})")
            return None

    def stamp(self) -> ImageStamp | None:
        return self._stamp

    def waiting(self) -> str | None:
        try:
            matched = self._reader is not None and bool(self._reader.get_matched_publications())
        except DDSException:
            matched = True  # unknown: say nothing rather than something wrong
        return None if matched else f"no publisher on ROS topic {self.topic}"

    def release(self) -> None:
        self._waitset = self._condition = self._reader = None  # the DDS entities are deleted with their objects
