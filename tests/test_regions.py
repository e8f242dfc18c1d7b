"""Where the detector looks (service/detect/regions.py): whole-frame passes on a schedule, regions around known faces
in between, found faces in the frame's pixels."""

import numpy as np
import pytest

from service.config import SAMPLE_CLIP, Settings
from service.detect import create_detector
from service.detect.base import Detection, FaceDetector
from service.detect.regions import RegionSearch, distinct_regions
from service.track.iou import iou

FRAME = np.zeros((480, 640, 3), np.uint8)


class Recorder(FaceDetector):
    """Finds one face of `side` px at the centre of whatever image it is given; records the images' shapes."""

    name = "recorder"

    def __init__(self, side: float = 40.0, min_face: int = 0, cheap: bool = True):
        self.side, self.min_face, self.searches_crops_cheaply = side, min_face, cheap
        self.shapes = []

    def detect(self, image):
        self.shapes.append(image.shape[:2])
        h, w = image.shape[:2]
        return [Detection((w / 2 - self.side / 2, h / 2 - self.side / 2, self.side, self.side), 0.9)]


def test_the_whole_frame_is_searched_on_schedule_and_only_regions_in_between():
    detector = Recorder()
    search = RegionSearch(detector, every=4, scale=3.0, min_face=40, every_empty=2)
    known = [(100.0, 100.0, 80.0, 80.0)]
    for _ in range(8):
        search.detect(FRAME, known)
    whole = [shape == (480, 640) for shape in detector.shapes]
    assert whole == [True, False, False, False, True, False, False, False]
    assert detector.shapes[1] == (240, 240)  # the face scaled to 2 x min_face, the region 3 times that
    # Nothing known: a pass every every_empty frames, and the frames in between cost no detector call at all.
    calls = len(detector.shapes)
    found = [search.detect(FRAME, []) for _ in range(4)]
    assert len(detector.shapes) == calls + 2 and found[1] == [] and found[3] == []
    assert (search.counts.whole, search.counts.region, search.counts.held, search.calls) == (4, 6, 0, 12)


def test_a_face_found_in_a_region_comes_back_in_the_frame_s_pixels_and_by_the_frame_s_size_rule():
    known = (300.0, 200.0, 80.0, 80.0)
    search = RegionSearch(Recorder(side=80.0), every=8, min_face=40)
    search.detect(FRAME, [known])  # the first call: the whole frame
    (face,) = search.detect(FRAME, [known])
    # The recorder "finds" a face of 80 px at the crop's centre: the known face (scaled 1:1, as 80 px is
    # 2 x min_face), at its own place and size.
    assert face.box == pytest.approx((300, 200, 80, 80))
    # A detector whose size rule (in the frame's pixels) refuses that 80 px face.
    search = RegionSearch(Recorder(side=80.0, min_face=100), every=8, min_face=40)
    search.detect(FRAME, [known])
    assert search.detect(FRAME, [known]) == []


def test_overlapping_known_boxes_are_one_region_and_a_detector_with_a_fixed_input_always_gets_the_frame():
    assert distinct_regions([(0, 0, 80, 80), (5, 5, 80, 80), (300, 0, 80, 80)]) == [(0, 0, 80, 80), (300, 0, 80, 80)]
    fixed = Recorder(cheap=False)  # SCRFD: a crop costs what the frame does
    search = RegionSearch(fixed, every=8, min_face=40)
    for _ in range(3):
        search.detect(FRAME, [(100.0, 100.0, 80.0, 80.0)])
    assert fixed.shapes == [(480, 640)] * 3 and search.every == 1
    with pytest.raises(ValueError):
        RegionSearch(Recorder(), every=0)


def test_blazeface_finds_the_sample_clip_s_face_in_its_region_where_the_whole_frame_search_does():
    from service.ingest import ClipDecoder

    settings = Settings(_env_file=None)
    detector = create_detector(settings)
    frames = [f.image for i, f in enumerate(ClipDecoder(SAMPLE_CLIP)) if i % 10 == 0][:12]
    search = RegionSearch(detector, every=1000, scale=settings.region_scale, min_face=settings.min_face)
    compared = 0
    for frame in frames:
        whole = detector.detect(frame)
        if not whole:
            continue
        search._since_whole = 0  # force a region search around the whole-frame face
        (region,) = search.detect(frame, [whole[0].box])
        assert iou(region.box, whole[0].box) > 0.8
        assert np.abs(np.subtract(region.landmarks, whole[0].landmarks)).max() < 0.1 * whole[0].box[2]
        compared += 1
    assert compared >= 8


def test_the_smallest_face_follows_the_frame_s_resolution():
    from service.detect.blazeface import AutoRangeBlazeFace

    settings = Settings(_env_file=None)
    assert settings.min_face_fraction == pytest.approx(1 / 12)
    detector = AutoRangeBlazeFace(settings.min_face, min_face_fraction=settings.min_face_fraction)
    assert detector.short.smallest_face(480, 640) == 40 and detector.short.smallest_face(720, 1280) == 60
    assert detector.short.input_shape(480, 640) == (240, 320) and not detector.needs_full(480, 640)
    assert detector.full.input_shape(720, 1280) == (224, 384)  # 576 px wide for min_face 40 alone
    alone = AutoRangeBlazeFace(settings.min_face)
    assert alone.full.input_shape(720, 1280) == (352, 576)
    face = Detection((0, 0, 50, 50), 0.9)
    assert detector.keeps(face, 720, 1280) and not detector.keeps(Detection((0, 0, 47, 47), 0.9), 720, 1280)


class Mover(Recorder):
    """Finds one face that moves `step` px right on every call, in the frame's pixels (also inside crops)."""

    def __init__(self, step: float):
        super().__init__()
        self.step, self.x = step, 100.0

    def detect(self, image):
        self.shapes.append(image.shape[:2])
        self.x += self.step
        if image.shape[:2] == FRAME.shape[:2]:
            return [Detection((self.x, 100.0, 80.0, 80.0), 0.9)]
        return [Detection((80.0 + self.step, 80.0, 80.0, 80.0), 0.9)]  # the known face (crop centre), moved on


def test_a_still_face_is_searched_every_other_frame_and_a_moving_one_every_frame():
    still = Recorder(side=80.0)
    search = RegionSearch(still, every=100, min_face=40, hold_shift=0.04)
    faces = [search.detect(FRAME, [(280.0, 200.0, 80.0, 80.0)]) for _ in range(7)]
    # Whole frame, then a region search (the same face: still), a held frame, a search, a held frame, ...
    assert len(still.shapes) == 4 and search.counts.held == 3 and all(len(f) == 1 for f in faces)
    assert faces[2] == faces[1]  # the held frame keeps the last search's face
    never = RegionSearch(Recorder(side=80.0), every=100, min_face=40, hold_shift=0.0)
    for _ in range(7):
        never.detect(FRAME, [(280.0, 200.0, 80.0, 80.0)])
    assert never.counts.held == 0 and never.counts.region == 6
    moving = RegionSearch(Mover(step=8.0), every=100, min_face=40, hold_shift=0.04)
    box = (100.0, 100.0, 80.0, 80.0)
    for _ in range(6):
        (face,) = moving.detect(FRAME, [box])
        box = face.box
    assert moving.counts.held == 0  # 8 px a frame is 10% of the face's side
