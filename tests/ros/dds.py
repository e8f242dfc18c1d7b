"""The test's own Cyclone DDS participant: a camera driver publishing the sample clip, and readers of what the
service publishes."""

from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from service.config import SAMPLE_CLIP
from service.ros.messages import CompressedImage, Header, Image, Time

BEST_EFFORT = Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(1))
RELIABLE = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepLast(10))


def own_participant() -> DomainParticipant:
    return DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))


def sample_frames(step: int = 2) -> list[np.ndarray]:
    """Every `step`-th frame of the bundled sample clip (BGR, 640x480, 25 fps)."""
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames[::step]
        frames.append(image)


def reader(dp: DomainParticipant, ros_topic: str, message_type: type, qos: Qos = RELIABLE) -> DataReader:
    return DataReader(dp, Topic(dp, "rt" + ros_topic, message_type), qos=qos)


def take_until(dds_reader: DataReader, enough, timeout: float = 60.0) -> list:
    """Samples taken until enough(samples) holds; fails after `timeout` (the test must stop by itself)."""
    samples, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.extend(dds_reader.take(N=100))
        if enough(samples):
            return samples
        time.sleep(0.05)
    raise AssertionError(f"{dds_reader.topic.name}: condition not met within {timeout} s ({len(samples)} samples)")


def encode(image: np.ndarray, kind: str, header: Header):
    """One camera frame as a ROS message: `jpeg`/`png` (CompressedImage) or an Image encoding (bgr8, rgb8, mono8,
    yuv422, or anything else, sent as bgr8 pixels under that name)."""
    if kind in ("jpeg", "png"):
        return CompressedImage(header, kind, cv2.imencode("." + kind, image)[1].tobytes())
    if kind == "rgb8":
        pixels = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif kind == "mono8":
        pixels = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif kind == "yuv422":  # ROS's yuv422 is UYVY
        pixels = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_UYVY)
    else:
        pixels = image
    height, width = pixels.shape[:2]
    return Image(header, height, width, kind, 0, pixels.strides[0], pixels.tobytes())


class CameraDriver(threading.Thread):
    """Publishes the sample clip, looped, on a ROS image topic at `fps`, stamped on a clock of its own (a robot's
    ROS time, far from the wall clock) with frame_id "test_camera"; `stamps` keeps what it sent."""

    BASE_SEC = 1_000_000

    def __init__(self, dp: DomainParticipant, ros_topic: str, kind: str, qos: Qos, fps: float = 12.0):
        super().__init__(daemon=True, name=f"camera-{kind}")
        message_type = CompressedImage if kind in ("jpeg", "png") else Image
        self.writer = DataWriter(dp, Topic(dp, "rt" + ros_topic, message_type), qos=qos)
        self.kind, self.period = kind, 1.0 / fps
        self.frames = sample_frames()
        self.stamps: set[tuple[int, int]] = set()
        self.sent = 0
        self.paused = threading.Event()
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()
        self.join(10)

    def run(self):
        while not self._stop_event.is_set():
            if not self.paused.is_set():
                stamp = Time(self.BASE_SEC + self.sent // 10, (self.sent % 10) * 100_000_000)
                image = self.frames[self.sent % len(self.frames)]
                self.writer.write(encode(image, self.kind, Header(stamp, "test_camera")))
                self.stamps.add((stamp.sec, stamp.nanosec))
                self.sent += 1
            self._stop_event.wait(self.period)
