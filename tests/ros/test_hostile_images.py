"""Whatever a publisher sends on a camera topic, the ROS source never raises and never allocates a frame larger than
the limits: property-based tests (Hypothesis) throw random and adversarial Image and CompressedImage messages of every
encoding, truncated and oversized, decompression bombs and bytes that are no message at all at the decoders and at
the source, and a capture thread flooded with broken messages still stops when asked."""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from service.ingest.capture import CaptureThread
from service.ingest.frame_source import (MALFORMED, REFUSED_SIZE, UNDECODABLE, UNSUPPORTED, FrameLimits, Grab,
                                         quoted)
from service.ingest.queues import BoundedQueue
from service.ingest.sources import parse_source
from service.ros import images
from service.ros.images import (ENCODINGS, ImageTopicSource, Unusable, check_message, compressed_to_bgr,
                                image_to_bgr, jpeg_size, png_size)
from service.ros.messages import CompressedImage, Header, Image, Time

SMALL = FrameLimits(max_side=256, max_pixels=256 * 192, max_aspect=8.0)
ENCODING_NAMES = list(ENCODINGS) + ["bayer_rggb8", "16UC1", "32FC1", "", "bgr8\n\x00", "x" * 300]
HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of `width` x `height` black grey pixels: a few hundred kB that decode to width * height bytes."""
    raw_row = b"\x00" * (width + 1)  # filter byte + pixels
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(raw_row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header is rewritten to declare width x height."""
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


@pytest.fixture(scope="module")
def bomb():
    return png_bomb(20000, 20000)


def test_headers_give_the_size_of_real_images_without_decoding():
    for height, width in [(1, 1), (48, 64), (480, 640), (1080, 1920), (7, 3001)]:
        picture = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
        assert jpeg_size(cv2.imencode(".jpg", picture)[1].tobytes()) == (width, height)
        assert png_size(cv2.imencode(".png", picture)[1].tobytes()) == (width, height)
    assert jpeg_size(b"\xff\xd8\xff") is None and png_size(b"\x89PNG\r\n\x1a\n") is None


def test_a_decompression_bomb_is_refused_from_its_header_without_being_decoded(bomb, monkeypatch):
    assert len(bomb) < 1_000_000 and png_size(bomb) == (20000, 20000)  # < 1 MB that would decode to 400 MB
    decoded = []
    monkeypatch.setattr(images.cv2, "imdecode", lambda *args: decoded.append(args))
    for data in (bomb, jpeg_declaring(20000, 20000), jpeg_declaring(100000 % 65536, 1)):
        with pytest.raises(Unusable) as refused:
            compressed_to_bgr(CompressedImage(Header(), "png", data))
        assert refused.value.skip.reason == REFUSED_SIZE
    assert decoded == []


def test_odd_width_yuv_short_data_and_absurd_sizes_are_broken_not_errors():
    for msg, reason in [
        (Image(Header(), 4, 5, "yuv422", 0, 10, bytes(40)), "broken"),  # odd width: OpenCV would raise
        (Image(Header(), 4, 4, "bgr8", 0, 12, bytes(47)), "broken"),  # data shorter than step says
        (Image(Header(), 4, 4, "bgr8", 0, 11, bytes(48)), "broken"),  # step shorter than a row
        (Image(Header(), 1, 100000, "mono8", 0, 100000, bytes(100000)), REFUSED_SIZE),  # 100000x1
        (Image(Header(), 20000, 20000, "bgr8", 0, 60000, b""), REFUSED_SIZE),  # declared, never sent
        (Image(Header(), 0, 0, "bgr8", 0, 0, b""), REFUSED_SIZE),
        (Image(Header(), 2, 2, "bayer_rggb8\x1b[31m", 0, 2, bytes(4)), UNSUPPORTED),
    ]:
        with pytest.raises(Unusable) as refused:
            image_to_bgr(msg)
        assert refused.value.skip.reason == reason
    with pytest.raises(Unusable) as refused:
        image_to_bgr(Image(Header(), 2, 2, "bayer_rggb8\x1b[31m" + "z" * 500, 0, 2, bytes(4)))
    detail = refused.value.skip.detail
    assert "\x1b" not in detail and "\\x1b" in detail and len(detail) < 200  # escaped and shortened


def test_quoted_escapes_and_shortens():
    assert quoted("a\nb") == "'a\\nb'" and len(quoted("x" * 1000)) == 40


@st.composite
def raw_images(draw):
    encoding = draw(st.sampled_from(ENCODING_NAMES) | st.text(max_size=12))
    width = draw(st.integers(0, 300) | st.sampled_from([1, 2, 3, 65535, 100000, 2**31 - 1]))
    height = draw(st.integers(0, 300) | st.sampled_from([1, 65535, 2**32 - 1]))
    channels = ENCODINGS.get(encoding, (3, None))[0]
    step = draw(st.sampled_from([width * channels, width * channels + 3, max(0, width * channels - 1)])
                | st.integers(0, 2**32 - 1))
    size = min(step * height, 200_000)
    length = draw(st.sampled_from([size, max(0, size - 1), size + 7]) | st.integers(0, 4096))
    return Image(Header(Time(1, 2), "cam"), height, width, encoding, 0, step, bytes(min(length, 200_000)))


@HYPOTHESIS
@given(raw_images())
def test_any_raw_image_converts_to_its_declared_size_or_is_skipped_with_a_reason(msg):
    try:
        image = image_to_bgr(msg, SMALL)
    except Unusable as exc:
        assert exc.skip.reason in ("broken", REFUSED_SIZE, UNSUPPORTED) and exc.skip.detail
        return
    assert image.shape == (msg.height, msg.width, 3) and image.dtype == np.uint8
    assert SMALL.problem(msg.width, msg.height) is None


def _valid_picture_bytes(kind: str, height: int, width: int, seed: int) -> bytes:
    picture = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    return cv2.imencode("." + kind, picture)[1].tobytes()


@st.composite
def compressed_images(draw):
    kind = draw(st.sampled_from(["jpg", "png"]))
    good = _valid_picture_bytes(kind, draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(0, 9)))
    data = draw(st.one_of(
        st.just(good),
        st.integers(0, len(good)).map(lambda n: good[:n]),  # truncated anywhere
        st.binary(max_size=64).map(lambda tail: good[:len(good) // 2] + tail),  # garbage after a good header
        st.binary(max_size=512),  # anything
        st.binary(max_size=64).map(lambda tail: b"\xff\xd8" + tail),  # a JPEG start, then anything
        st.binary(max_size=64).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail),
        st.tuples(st.integers(0, 70000), st.integers(0, 70000)).map(lambda wh: jpeg_declaring(wh[0] % 65536,
                                                                                               wh[1] % 65536)),
    ))
    fmt = draw(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png", ""])
               | st.text(max_size=20))
    return CompressedImage(Header(Time(1, 2), "cam"), fmt, data)


@HYPOTHESIS
@given(compressed_images())
def test_any_compressed_image_decodes_within_the_limits_or_is_skipped_with_a_reason(msg):
    try:
        image = compressed_to_bgr(msg, SMALL)
    except Unusable as exc:
        assert exc.skip.reason in ("broken", UNDECODABLE, REFUSED_SIZE, UNSUPPORTED) and exc.skip.detail
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert SMALL.problem(image.shape[1], image.shape[0]) is None


class ScriptedReader:
    """A DDS reader and waitset that hand the source whatever the script says: messages, lifecycle samples,
    exceptions raised by take() (what deserialising bytes that are no message raises), or nothing."""

    def __init__(self, script: list):
        self.script = list(script)
        self.publishers = [1]

    def wait(self, timeout):
        return int(bool(self.script))

    def take(self, N, condition):
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return [] if item is None else [item]

    def get_matched_publications(self):
        return self.publishers


def scripted_source(script, topic="/cam/image_raw", limits=SMALL) -> tuple[ImageTopicSource, ScriptedReader]:
    source = ImageTopicSource.__new__(ImageTopicSource)
    reader = ScriptedReader(script)
    source.topic, source.limits, source.poll_s = topic, limits, 0.01
    source.type = images.message_type(topic)
    source.failure = source.last_skip = source._stamp = source._grabbed = None
    source._reader, source._waitset, source._condition = reader, reader, None
    return source, reader


def cdr_noise(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, seed % 200, np.uint8).tobytes()


@st.composite
def topic_traffic(draw):
    """What arrives on a raw image topic: images (good or not), lifecycle samples, undecodable bytes, silence."""
    from cyclonedds.internal import InvalidSample

    def deserialised(seed):
        try:
            return Image.deserialize(cdr_noise(seed))
        except Exception as exc:  # what take() raises for bytes that are no Image
            return exc

    return draw(st.lists(st.one_of(raw_images(), st.none(), st.integers(0, 10**6).map(deserialised),
                                   st.just(InvalidSample(Image(), None)), st.just(ValueError("bad CDR"))),
                         max_size=20))


@HYPOTHESIS
@given(topic_traffic())
def test_nothing_a_topic_delivers_raises_out_of_the_source(traffic):
    source, _ = scripted_source(traffic)
    for _ in range(len(traffic)):
        grabbed = source.grab()
        assert grabbed in (Grab.FRAME, Grab.IDLE, Grab.SKIPPED)
        if grabbed is Grab.SKIPPED:
            assert source.last_skip.reason in (MALFORMED, "broken", REFUSED_SIZE, UNSUPPORTED)
        if grabbed is Grab.FRAME:
            image = source.retrieve()
            assert image is None or SMALL.problem(image.shape[1], image.shape[0]) is None


def test_lifecycle_samples_are_no_images_and_no_publisher_is_said(monkeypatch):
    from cyclonedds.internal import InvalidSample

    source, reader = scripted_source([InvalidSample(Image(), None)])
    assert source.grab() is Grab.IDLE and source.waiting() is None
    reader.publishers = []
    assert source.grab() is Grab.IDLE and source.waiting() == "no publisher on ROS topic /cam/image_raw"


def test_a_capture_flooded_with_broken_messages_counts_them_and_stops_when_asked():
    """Before: grab() looped over failing messages and never looked at the stop flag."""
    class Flood:
        def wait(self, timeout):
            return 1

        def take(self, N, condition):
            raise ValueError("not a sensor_msgs/Image")

        def get_matched_publications(self):
            return [1]

    source, _ = scripted_source([])
    source._reader = source._waitset = Flood()
    capture = CaptureThread(parse_source("flood=ros:/cam/image_raw"), BoundedQueue(2), 8.0, time.monotonic,
                            opener=lambda spec: source, silence_s=0.2)
    capture.start()
    deadline = time.monotonic() + 10
    while capture.frames_skipped < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    capture.stop()
    capture.join(2)
    assert not capture.is_alive() and capture.status == "stopped"
    assert capture.counters.skipped[MALFORMED] >= 1000 and capture.reconnects == 0
    assert "that is no Image (ValueError)" in capture.counters.last_skip


def test_bombs_among_good_images_are_refused_and_the_good_ones_pass(bomb):
    good = CompressedImage(Header(Time(3, 0), "cam"), "jpeg", _valid_picture_bytes("jpg", 48, 64, 1))
    script = [CompressedImage(Header(Time(1, 0), "cam"), "png", bomb), good] * 3
    source, _ = scripted_source(script, "/cam/image_raw/compressed", FrameLimits())
    out = []
    for _ in range(len(script)):
        if source.grab() is Grab.FRAME:
            out.append(source.retrieve())
        else:
            assert source.last_skip.reason == REFUSED_SIZE and "20000x20000" in source.last_skip.detail
    assert len(out) == 3 and all(image.shape == (48, 64, 3) for image in out)
