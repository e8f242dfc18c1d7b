import numpy as np
import pytest

from service.config import Settings
from service.detect import choose_detector, create_detector
from service.detect.base import Detection, downscale, rescale
from service.detect.haar import HaarFaceDetector
from service.errors import DetectorError


def test_haar_finds_the_astronaut_face(astronaut_image):
    found = HaarFaceDetector().detect(astronaut_image)
    assert len(found) == 1
    x, y, w, h = found[0].box
    # The face of the 512x512 photograph sits around x 175-275, y 60-165.
    assert 160 < x < 200 and 50 < y < 90 and 80 < w < 130 and w == h


def test_haar_finds_nothing_in_a_blank_frame():
    assert HaarFaceDetector().detect(np.full((480, 640, 3), 128, np.uint8)) == []


def test_haar_boxes_are_in_source_pixels_when_downscaled(astronaut_image):
    import cv2

    big = cv2.resize(astronaut_image, (1024, 1024))
    (face,) = HaarFaceDetector(max_side=512).detect(big)
    assert 320 < face.box[0] < 400 and 160 < face.box[2] < 260


def test_downscale_and_rescale_round_trip():
    image = np.zeros((960, 1280, 3), np.uint8)
    small, scale = downscale(image, 640)
    assert small.shape == (480, 640, 3) and scale == 2.0
    det = rescale(Detection((10, 20, 30, 40), 0.9, ((1, 2),) * 5), scale)
    assert det.box == (20, 40, 60, 80) and det.landmarks[0] == (2, 4)


def test_auto_picks_haar_without_model_files_and_says_why(settings):
    name, reason = choose_detector(settings)
    assert name == "haar" and "EMOTION_SCRFD_MODEL" in reason


def test_auto_prefers_scrfd_then_yunet(tmp_path):
    assert choose_detector(Settings(_env_file=None, scrfd_model=tmp_path, yunet_model=tmp_path))[0] == "scrfd"
    assert choose_detector(Settings(_env_file=None, yunet_model=tmp_path))[0] == "yunet"


@pytest.mark.parametrize("field, kind", [("yunet_model", "YuNet"), ("scrfd_model", "SCRFD")])
def test_configured_model_that_does_not_exist_names_the_path(tmp_path, field, kind):
    missing = tmp_path / "models" / "missing.onnx"
    with pytest.raises(DetectorError, match=f"{kind} model.*{missing}"):
        create_detector(Settings(_env_file=None, **{field: missing}))


def test_scrfd_directory_without_model_lists_what_it_looked_for(tmp_path):
    with pytest.raises(DetectorError, match="det_10g.onnx"):
        create_detector(Settings(_env_file=None, scrfd_model=tmp_path))


@pytest.mark.parametrize("detector", ["yunet", "scrfd"])
def test_forcing_a_detector_without_its_model_is_an_error(detector):
    with pytest.raises(DetectorError, match="needs EMOTION_"):
        create_detector(Settings(_env_file=None, detector=detector))


def test_yunet_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    bogus = tmp_path / "yunet.onnx"
    bogus.write_bytes(b"not an onnx file")
    with pytest.raises(DetectorError, match="cannot load YuNet"):
        create_detector(Settings(_env_file=None, yunet_model=bogus))
