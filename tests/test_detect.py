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


@pytest.mark.parametrize("convert", ["BGR2GRAY", "BGR2BGRA"])
def test_haar_takes_grey_and_alpha_frames(astronaut_image, convert):
    import cv2

    frame = cv2.cvtColor(astronaut_image, getattr(cv2, f"COLOR_{convert}"))
    (face,) = HaarFaceDetector().detect(frame)
    (upright,) = HaarFaceDetector().detect(astronaut_image)
    assert np.abs(np.subtract(face.box, upright.box)).max() < 10


def test_an_empty_frame_has_no_faces(blazeface):
    for detector in (HaarFaceDetector(), *blazeface.values()):
        for shape in ((0, 0, 3), (0, 640), (480, 0, 4)):
            assert detector.detect(np.zeros(shape, np.uint8)) == []


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


def test_auto_picks_the_embedded_blazeface_without_model_files_and_says_why(settings):
    name, reason = choose_detector(settings)
    assert name == "blazeface" and "EMOTION_SCRFD_MODEL" in reason


def test_auto_prefers_a_configured_scrfd_then_a_configured_yunet_then_blazeface(tmp_path):
    assert choose_detector(Settings(_env_file=None, scrfd_model=tmp_path, yunet_model=tmp_path))[0] == "scrfd"
    name, reason = choose_detector(Settings(_env_file=None, yunet_model=tmp_path))
    assert name == "yunet" and str(tmp_path) in reason
    name, reason = choose_detector(Settings(_env_file=None))
    assert name == "blazeface" and "EMOTION_SCRFD_MODEL" in reason
    assert choose_detector(Settings(_env_file=None, detector="haar", yunet_model=tmp_path))[0] == "haar"
    assert choose_detector(Settings(_env_file=None, detector="haar"))[0] == "haar"


@pytest.mark.parametrize("field, kind, detector", [("yunet_model", "YuNet", "yunet"), ("scrfd_model", "SCRFD", "auto")])
def test_configured_model_that_does_not_exist_names_the_path(tmp_path, field, kind, detector):
    missing = tmp_path / "models" / "missing.onnx"
    with pytest.raises(DetectorError, match=f"{kind} model.*{missing}"):
        create_detector(Settings(_env_file=None, detector=detector, **{field: missing}))


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
        create_detector(Settings(_env_file=None, detector="yunet", yunet_model=bogus))


# ---- BlazeFace (embedded) -----------------------------------------------------------------------------------------

from service.detect.blazeface import (BLAZEFACE_RANGES, MODEL_FILES, BlazeFaceFaceDetector, decode,  # noqa: E402
                                      ssd_anchors)


@pytest.fixture(scope="module")
def blazeface():
    return {name: BlazeFaceFaceDetector(name) for name in BLAZEFACE_RANGES}


@pytest.mark.parametrize("range_name", ["short", "full"])
def test_blazeface_finds_the_astronaut_face_where_haar_does_with_six_keypoints(blazeface, astronaut_image,
                                                                               range_name):
    (face,) = blazeface[range_name].detect(astronaut_image)
    (haar,) = HaarFaceDetector().detect(astronaut_image)
    x, y, w, h = face.box
    assert w == h and abs(x - haar.box[0]) < 20 and abs(y - haar.box[1]) < 20 and 0.8 < w / haar.box[2] < 1.3
    assert face.score > 0.8 and len(face.landmarks) == 6
    (lx, ly), (rx, ry), (nx, ny) = face.landmarks[:3]
    assert lx < nx < rx and max(ly, ry) < ny  # image-left eye first, nose below the eyes
    assert all(x < px < x + w and y < py < y + h for px, py in face.landmarks[:4])


def test_blazeface_finds_nothing_in_a_blank_frame(blazeface):
    assert blazeface["short"].detect(np.full((480, 640, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("shape", [(1, 1), (7, 1000), (1000, 7, 3), (480, 640), (480, 640, 1), (480, 640, 4),
                                   (33, 65, 3)])
def test_blazeface_takes_frames_of_any_size_grey_or_with_alpha(blazeface, shape):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for detector in blazeface.values():
        assert isinstance(detector.detect(frame), list)


def test_grey_and_bgra_frames_find_the_same_face(blazeface, astronaut_image):
    import cv2

    grey = cv2.cvtColor(astronaut_image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(astronaut_image, cv2.COLOR_BGR2BGRA)
    (a,), (b,) = blazeface["short"].detect(grey), blazeface["short"].detect(bgra)
    (c,) = blazeface["short"].detect(astronaut_image)
    assert np.allclose(b.box, c.box) and np.abs(np.subtract(a.box, c.box)).max() < 10


def test_tilted_face_keypoints_follow_the_tilt(blazeface, astronaut_image):
    import cv2

    centre = (225, 115)
    tilted = cv2.warpAffine(astronaut_image, cv2.getRotationMatrix2D(centre, 25, 1.0), (512, 512))
    face = blazeface["short"].detect(tilted)[0]  # best first
    from service.crops import eye_angle

    assert abs(face.box[0] + face.box[2] / 2 - centre[0]) < 15 and abs(face.box[1] + face.box[3] / 2 - centre[1]) < 15

    # Turned 25 degrees counter-clockwise on screen: the eye line now rises to the right by about that much.
    assert -35 < eye_angle(face.landmarks) < -15


def test_ssd_anchors_are_mediapipes():
    short, full = BLAZEFACE_RANGES["short"], BLAZEFACE_RANGES["full"]
    assert len(ssd_anchors(short, 128, 128)) == 896 and len(ssd_anchors(full, 192, 192)) == 2304
    anchors = ssd_anchors(short, 128, 128)
    # 16x16 cells of stride 8 with 2 anchors each, then 8x8 of stride 16 with 6 (three layers of the same stride)
    assert anchors[0].tolist() == anchors[1].tolist() == [4.0, 4.0] and anchors[2].tolist() == [12.0, 4.0]
    assert anchors[512].tolist() == [8.0, 8.0] and anchors[512:518].tolist() == [[8.0, 8.0]] * 6
    assert len(ssd_anchors(short, 96, 128)) == 12 * 16 * 2 + 6 * 8 * 6  # any input size the strides divide


def test_decode_clips_scores_and_merges_overlapping_boxes_by_weight():
    config = BLAZEFACE_RANGES["short"]
    anchors = ssd_anchors(config, 128, 128)
    raw_boxes = np.zeros((896, 16), np.float32)
    raw_scores = np.full((896, 1), -1e4, np.float32)  # far beyond the clip: no overflow, no face
    # Two overlapping candidates on the first anchor position (4, 4): 20 px boxes, one shifted 2 px right.
    raw_boxes[0, :4] = [10, 10, 20, 20]
    raw_boxes[1, :4] = [12, 10, 20, 20]
    raw_scores[0], raw_scores[1] = 1e4, 0.0  # sigmoid: 1 and 0.5
    # A third, far away, on its own.
    raw_boxes[600, :4] = [0, 0, 16, 16]
    raw_scores[600] = 3.0
    with np.errstate(all="raise"):
        faces = decode(raw_boxes, raw_scores, anchors, min_score=0.4)
    assert len(faces) == 2 and faces[0].score == 1.0
    x, y, w, h = faces[0].box
    # weighted mean of the centres 14 and 16 with weights 1 and 0.5 -> 14.667; size 20
    assert x + w / 2 == pytest.approx(14 + 2 * 0.5 / 1.5, abs=1e-4) and w == pytest.approx(20)
    assert faces[1].score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert decode(raw_boxes, raw_scores, anchors, min_score=0.99)[0].score == 1.0


def test_blazeface_input_grows_with_the_smallest_face_wanted():
    short = BlazeFaceFaceDetector("short", min_face=40)
    assert short.input_shape(480, 640) == (240, 320)  # 40 px faces -> 20 px at the input
    assert BlazeFaceFaceDetector("short", min_face=200).input_shape(480, 640) == (96, 128)  # the model's own size
    assert BlazeFaceFaceDetector("short", min_face=8, max_side=640).input_shape(480, 640) == (480, 640)  # capped
    assert short.input_shape(100, 80) == (112, 80)  # never enlarged, padded to the stride


@pytest.mark.parametrize("content", [None, b"not an onnx file"])
def test_missing_or_corrupt_blazeface_model_is_an_error_naming_the_path(tmp_path, content):
    path = tmp_path / MODEL_FILES["short"]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DetectorError, match=f"BlazeFace model.*{path}.*make detectors"):
        BlazeFaceFaceDetector("short", model=path)


def test_detector_and_opencv_threads_come_from_the_settings():
    import cv2

    detector = create_detector(Settings(_env_file=None, detect_threads=2, opencv_threads=1))
    assert detector.name == "blazeface"
    for model in (detector.short, detector.full):  # range auto
        assert model._session.get_session_options().intra_op_num_threads == 2
    assert cv2.getNumThreads() == 1
    create_detector(Settings(_env_file=None, opencv_threads=3, detector="haar"))
    assert cv2.getNumThreads() == 3
    create_detector(Settings(_env_file=None))  # back to the default for the other tests


# ---- BlazeFace range "auto": short range on small inputs, full range too on HD frames -----------------------------

from service.detect.base import keep_highest  # noqa: E402
from service.detect.blazeface import AutoRangeBlazeFace  # noqa: E402


@pytest.fixture(scope="module")
def sample_frames():
    """Every other sampled frame (8 fps) of the bundled 640x480 sample clip."""
    from service.config import SAMPLE_CLIP
    from service.ingest import ClipDecoder, FrameSampler

    sampler = FrameSampler(8.0)
    return [f.image for f in ClipDecoder(SAMPLE_CLIP) if sampler.accept(f.t)][::2]


def test_blazeface_range_setting_validates_and_picks_the_detector():
    from pydantic import ValidationError

    assert Settings(_env_file=None).blazeface_range == "auto"
    with pytest.raises(ValidationError, match="blazeface_range"):
        Settings(_env_file=None, blazeface_range="medium")
    assert isinstance(create_detector(Settings(_env_file=None)), AutoRangeBlazeFace)
    for name in ("short", "full"):
        detector = create_detector(Settings(_env_file=None, blazeface_range=name))
        assert isinstance(detector, BlazeFaceFaceDetector) and detector.range_name == name


def test_auto_range_on_640x480_is_short_range(blazeface, sample_frames, astronaut_image):
    auto = AutoRangeBlazeFace()
    assert not auto.needs_full(480, 640) and auto.needs_full(720, 1280)  # HD frames, or a smaller min_face
    assert AutoRangeBlazeFace(min_face=24).needs_full(480, 640)
    for frame in [astronaut_image, *sample_frames[::3]]:
        assert auto.detect(frame) == blazeface["short"].detect(frame)


def test_auto_range_reports_no_false_face_on_a_1280x720_sample_clip(blazeface, sample_frames):
    """Short range alone, on the 640-px input a 1280x720 frame needs, reports the spacesuit's collar as faces; auto
    finds the face wherever short range finds it at 640x480, and nothing else."""
    import cv2

    auto, short_false = AutoRangeBlazeFace(), 0
    for frame in sample_frames:
        x, y, w, h = blazeface["short"].detect(frame)[0].box  # best first: the face (the collar scores lower)
        truth = (2 * x, 1.5 * y, 2 * w, 1.5 * h)
        hd = cv2.resize(frame, (1280, 720))
        found = auto.detect(hd)
        assert found and all(_centre_inside(face.box, truth) for face in found)
        short_false += sum(not _centre_inside(face.box, truth) for face in blazeface["short"].detect(hd))
    assert short_false >= len(sample_frames) // 2  # the defect auto fixes


def _centre_inside(box, truth) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return truth[0] <= cx <= truth[0] + truth[2] and truth[1] <= cy <= truth[1] + truth[3]


def test_keep_highest_keeps_the_best_of_overlapping_faces_with_its_keypoints():
    low = Detection((0, 0, 100, 100), 0.7, ((1.0, 1.0),))
    high = Detection((10, 5, 100, 100), 0.9, ((2.0, 2.0),))
    apart = Detection((300, 0, 50, 50), 0.65, ((3.0, 3.0),))
    assert keep_highest([low, apart, high]) == [high, apart]
    assert keep_highest([]) == []


def test_crops_that_shrink_are_resampled_with_area_interpolation_not_aliased():
    """warpAffine has no area interpolation (INTER_AREA there is bilinear): a crop shrunk 5x took every 5th pixel,
    and fine stripes came out as solid bars. The region search and the face check see such crops."""
    from service.detect.base import crop_around, from_crop

    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: mean 127.5 at any coarser scale
    crop, zoom, offset = crop_around(stripes, (220.0, 140.0, 200.0, 200.0), 3.0, 128)
    inside = crop[20:100, 20:100].astype(np.float64)  # within the frame
    assert zoom < 1 and abs(inside.mean() - 127.5) < 3 and inside.std() < 20
    # The mapping back still lands where it should: the frame's centre of the box is the crop's centre.
    from service.detect.base import Detection

    centre = from_crop(Detection((63.0, 63.0, 2.0, 2.0), 1.0), zoom, offset).box
    assert abs(centre[0] + centre[2] / 2 - 320) < 3 and abs(centre[1] + centre[3] / 2 - 240) < 3
    # Beyond the frame it is black, and a grey frame gives a grey crop.
    edge, _, _ = crop_around(stripes, (600.0, 440.0, 100.0, 100.0), 3.0, 64)
    assert edge[-5:, -5:].max() == 0
    grey, _, _ = crop_around(np.zeros((480, 640), np.uint8), (220.0, 140.0, 200.0, 200.0), 3.0, 128)
    assert grey.shape == (128, 128)
