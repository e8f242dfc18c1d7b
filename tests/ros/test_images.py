"""ROS image messages -> BGR frames (pure), and `ros:` source names."""

import cv2
import numpy as np
import pytest

from service.errors import SourceError
from service.ingest.sources import SourceKind, parse_source
from service.ros.images import BrokenImage, UnsupportedEncoding, compressed_to_bgr, image_to_bgr, message_type
from service.ros.messages import CompressedImage, Header, Image
from tests.ros.dds import encode


@pytest.fixture(scope="module")
def picture(astronaut_image):
    # Smooth, so that 4:2:2 chroma and JPEG lose little and the bounds below stay tight.
    return cv2.GaussianBlur(cv2.resize(astronaut_image, (64, 48)), (7, 7), 3)


@pytest.mark.parametrize("kind,mean_error,max_error", [("bgr8", 0, 0), ("rgb8", 0, 0), ("mono8", 0, 0),
                                                       ("yuv422", 2, 16), ("png", 0, 0), ("jpeg", 3, 40)])
def test_each_encoding_comes_back_as_the_bgr_picture(picture, kind, mean_error, max_error):
    msg = encode(picture, kind, Header())
    image = compressed_to_bgr(msg) if isinstance(msg, CompressedImage) else image_to_bgr(msg)
    assert image.shape == picture.shape and image.dtype == np.uint8
    expected = (cv2.cvtColor(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) if kind == "mono8"
                else picture)
    error = np.abs(image.astype(int) - expected)
    assert error.mean() <= mean_error and error.max() <= max_error


def test_padded_rows_are_cut():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = pixels.reshape(2, 9)
    image = image_to_bgr(Image(Header(), 2, 3, "bgr8", 0, 12, padded.tobytes()))
    assert np.array_equal(image, pixels)


def test_an_unknown_encoding_is_one_clear_error_and_broken_pixels_are_broken():
    with pytest.raises(UnsupportedEncoding, match="bayer_rggb8.*supported: bgr8"):
        image_to_bgr(Image(Header(), 2, 2, "bayer_rggb8", 0, 2, bytes(4)))
    with pytest.raises(BrokenImage):
        image_to_bgr(Image(Header(), 2, 3, "bgr8", 0, 9, bytes(10)))  # 18 bytes needed
    with pytest.raises(BrokenImage):
        compressed_to_bgr(CompressedImage(Header(), "jpeg", b"\xff\xd8 not really a jpeg"))
    with pytest.raises(UnsupportedEncoding):
        compressed_to_bgr(CompressedImage(Header(), "16UC1; compressedDepth png", b"x"))


def test_ros_sources_are_named_after_their_topic():
    spec = parse_source("ros:/camera/image_raw/compressed")
    assert (spec.kind, spec.uri, spec.name) == (SourceKind.ROS, "/camera/image_raw/compressed",
                                                "camera_image_raw_compressed")
    assert message_type(spec.uri) is CompressedImage and message_type("/camera/image_raw") is Image
    assert parse_source("head=ros:/head_camera/image").name == "head"
    with pytest.raises(SourceError, match="ROS topic"):
        parse_source("ros:/camera/1bad")
