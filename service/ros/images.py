"""A ROS 2 image topic as a live source: `ros:/camera/image_raw` (sensor_msgs/Image) or a topic ending in
`/compressed` (sensor_msgs/CompressedImage, JPEG or PNG; image_transport's naming). `ImageTopicCapture` reads like
an OpenCV capture, so the live capture thread samples, queues, counts and reconnects it like any other source:

- grab() waits for the next image message, retrieve() converts it (only the sampled ones are: a 30 fps JPEG camera
  sampled at 8 fps decodes 8 images a second), read() does both; a topic silent for `silence_s` ends the read (the
  source is down, and the capture thread reopens it with its backoff: it comes back by itself when images flow
  again);
- a malformed or undecodable message is counted (`skipped`) and skipped (an undecodable one only when retrieved);
- an encoding we cannot convert ends the read with one clear `failure`, which /v1/state shows as the source's error;
- `stamp` is the header (stamp, frame_id) of the image read last: outputs about that frame carry it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from cyclonedds.core import DDSException, ReadCondition, SampleState, ViewState, InstanceState, WaitSet
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from service.ros.dds import RosError, dds_topic_name, participant, sensor_qos
from service.ros.messages import CompressedImage, Image, Time

log = logging.getLogger(__name__)

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


class UnsupportedEncoding(ValueError):
    """An image encoding we cannot convert (e.g. bayer_rggb8, 16UC1): not the message's fault, nor passing."""


class BrokenImage(ValueError):
    """A message whose pixels do not add up or do not decode: skipped."""


@dataclass(frozen=True)
class ImageStamp:
    """The header of the image a frame came from."""

    stamp: Time
    frame_id: str


def check_encoding(msg: Image | CompressedImage) -> None:
    """UnsupportedEncoding when no image of this message's encoding or format can be converted (pure; cheap: the
    pixels are not looked at)."""
    if isinstance(msg, CompressedImage):
        if "compressedDepth" in msg.format:
            raise UnsupportedEncoding(f"compressed format {msg.format!r} (a depth image) is not supported")
    elif msg.encoding not in ENCODINGS:
        raise UnsupportedEncoding(f"image encoding {msg.encoding!r} is not supported (supported: "
                                  f"{', '.join(ENCODINGS)})")


def image_to_bgr(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> BGR uint8 (pure)."""
    check_encoding(msg)
    channels, conversion = ENCODINGS[msg.encoding]
    row = msg.width * channels
    if msg.width == 0 or msg.height == 0 or msg.step < row or len(msg.data) < msg.step * msg.height:
        raise BrokenImage(f"{msg.width}x{msg.height} {msg.encoding} image with step {msg.step} and "
                          f"{len(msg.data)} bytes")
    rows = np.frombuffer(msg.data, np.uint8, msg.step * msg.height).reshape(msg.height, msg.step)[:, :row]
    image = rows.reshape(msg.height, msg.width, channels) if channels > 1 else rows
    return np.ascontiguousarray(image) if conversion is None else cv2.cvtColor(image, conversion)


def compressed_to_bgr(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, anything OpenCV decodes) -> BGR uint8 (pure)."""
    check_encoding(msg)
    image = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR) if msg.data else None
    if image is None:
        raise BrokenImage(f"{len(msg.data)} bytes of {msg.format or 'unknown format'} that do not decode")
    return image


def message_type(topic: str) -> type:
    return CompressedImage if topic.rstrip("/").endswith("/compressed") else Image


class ImageTopicCapture:
    """The capture interface the live capture thread uses (isOpened, read, get, release) over a DDS reader."""

    def __init__(self, topic: str, silence_s: float):
        self.topic, self.silence_s = topic, silence_s
        self.type = message_type(topic)
        self.skipped = 0
        self.failure: str | None = None
        self.stamp: ImageStamp | None = None
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

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._reader is not None

    def get(self, prop: int) -> float:
        return 0.0  # no fixed frame rate: images come as the publisher sends them

    def grab(self) -> bool:
        """Takes the next image message without converting it (retrieve() does: the capture thread converts only
        the images it samples). False when the topic fell silent for silence_s or its images have an encoding we
        cannot convert (`failure` says which)."""
        self._grabbed = None
        while self._reader is not None:
            if self._waitset.wait(duration(seconds=self.silence_s)) == 0:
                self.failure = f"no image on ROS topic {self.topic} for {self.silence_s:g} s"
                return False
            try:
                samples = self._reader.take(N=1, condition=self._condition)
            except DDSException:
                raise
            except Exception as exc:  # the bytes are not a valid message of this type
                self._skip(f"malformed message ({type(exc).__name__}: {exc})")
                continue
            if not samples:
                continue
            msg = samples[0]
            try:
                check_encoding(msg)
            except UnsupportedEncoding as exc:
                self.failure = f"ROS topic {self.topic}: {exc}"
                return False
            self._grabbed = msg
            self.stamp = ImageStamp(msg.header.stamp, msg.header.frame_id)
            return True
        return False

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        """The grabbed image as BGR; (False, None) when its pixels are broken (counted in `skipped`, logged)."""
        msg, self._grabbed = self._grabbed, None
        if msg is None:
            return False, None
        try:
            return True, compressed_to_bgr(msg) if self.type is CompressedImage else image_to_bgr(msg)
        except BrokenImage as exc:
            self._skip(str(exc))
            return False, None

    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next image that converts (broken ones skipped), or (False, None) as grab() fails."""
        while self.grab():
            ok, image = self.retrieve()
            if ok:
                return True, image
        return False, None

    def _skip(self, why: str) -> None:
        self.skipped += 1
        # The first of a run at WARNING, the rest at DEBUG: a broken publisher must not flood the log.
        log.log(logging.WARNING if self.skipped == 1 else logging.DEBUG, "ROS topic %s: skipped %s (%d so far)",
                self.topic, why, self.skipped)

    def release(self) -> None:
        self._waitset = self._condition = self._reader = None  # the DDS entities are deleted with their objects
