"""No phantom people: footage with nobody in it makes no track, a portrait makes exactly one, and a track is
announced (track_new) only when it is confirmed (service/detect/checks.py, service/track/confirm.py)."""

import numpy as np
import pytest

from service.config import Settings
from service.detect.base import Detection, FaceDetector
from service.detect.checks import keypoints_plausible
from service.crops import CropPolicy
from service.pipeline import FacePipeline
from service.track import ConfirmingTracker, IouTracker, create_tracker

pytest.importorskip("skimage")


def test_footage_with_nobody_in_it_makes_no_track_where_the_unchecked_loop_made_some():
    from bench.phantoms import BEFORE, Clip, compare
    from service.footage.scenes import empty_scenes

    clips = [Clip("nobody", s.name, s.frames, s.faces) for s in empty_scenes(10, ("hubble_deep_field", "cells"))]
    result = compare({"checks off": BEFORE, "defaults": {}}, clips)
    assert result["checks off"]["sets"]["nobody"]["tracks"] >= 2  # galaxies and cells taken for faces
    assert result["defaults"]["sets"]["nobody"]["tracks"] == 0
    assert result["defaults"]["false_tracks_per_hour"] == 0


def test_footage_with_nobody_in_it_makes_no_track_on_hd_frames_either():
    # These 12 frames of the Hubble deep field's zoom at 1280x720 (range auto runs short and full range) made a
    # track at face_check_score 0.5, the former default (docs/DETECTION.md; the full HD set: bench phantoms).
    from bench.phantoms import Clip, compare, scaled
    from service.footage.scenes import empty_scenes

    clips = [Clip("nobody", s.name, s.frames, s.faces) for s in empty_scenes(12, ("hubble_deep_field",))
             if s.name.endswith("zoom")]
    result = compare({"defaults": {}}, scaled(clips, (1280, 720)))["defaults"]
    assert result["sets"]["nobody"]["frames"] == 12 and result["sets"]["nobody"]["tracks"] == 0


def test_each_portrait_still_makes_exactly_one_track_also_before_a_blurred_background():
    from bench.phantoms import BEFORE, Clip, run_clip
    from service.footage.scenes import PORTRAITS, portrait_before_building, portrait_stills

    scenes = [*portrait_stills(8, PORTRAITS[:2]), portrait_before_building(10, "motorcycle")]
    settings = Settings(_env_file=None)
    for scene in scenes:
        row = run_clip(settings, Clip("portraits", scene.name, scene.frames, scene.faces))
        assert (row["tracks"], row["false_tracks"], row["people_found"]) == (1, 0, [True]), scene.name
    # The unchecked loop took part of the blurred background for a second person.
    assert run_clip(Settings(_env_file=None, **BEFORE), Clip("", "", scenes[-1].frames, scenes[-1].faces))[
        "false_tracks"] == 1


def face(x=100.0, y=100.0, score=0.9):
    return Detection((x, y, 80.0, 80.0), score)


class Script(FaceDetector):
    """A detector that returns the given detections frame by frame."""

    name = "script"

    def __init__(self, frames):
        self.frames = iter(frames)

    def detect(self, image):
        return next(self.frames)


def test_track_new_is_published_with_the_first_tracked_face_only_once_the_face_check_passes():
    # The candidate at x=100 looks like a face from its third frame on; the one at x=400 never does. Both are
    # judged on their first two frames and rest two frames; x=100 passes when judged again (frames 3 and 4).
    looks_like = {2: {100}, 3: {100}, 4: {100}, 5: {100}}
    current = {}

    def check(image, box):
        return 0.9 if box[0] in looks_like.get(current["i"], ()) else 0.1

    settings = Settings(_env_file=None, detect_every=1, detect_every_empty=1)  # the script knows whole frames only
    tracker = ConfirmingTracker(IouTracker(min_hits=1), min_hits=2, start_score=0.6, check=check, check_score=0.6,
                                retry_frames=2)
    pipeline = FacePipeline("s", None, settings, Script([[face(), face(400)]] * 6), tracker,
                            crop=CropPolicy(16, 1, 0.2))
    image = np.zeros((480, 640, 3), np.uint8)
    seen, news = [], []
    for i in range(6):
        current["i"] = i
        result = pipeline.process(float(i), image)
        seen.append(sorted(c.box[0] for c in result.crops))
        news += [(i, e.track_id) for e in result.lifecycle if e.type == "track_new"]
        assert [f.track_id for f in pipeline.last_faces] == [c.track_id for c in result.crops]  # the live view's
    assert seen == [[], [], [], [], [100.0], [100.0]]  # confirmed after two face-like frames (3 and 4)
    assert news == [(4, 1)]
    assert [e.type for e in pipeline.finish().lifecycle] == ["track_lost"]  # the unconfirmed one ends silently


def test_a_track_is_born_only_from_a_confident_detection_and_needs_consecutive_frames():
    tracker = ConfirmingTracker(IouTracker(min_hits=1), min_hits=3, start_score=0.8)
    updates = [tracker.update([face(score=s)]) for s in (0.7, 0.7, 0.7, 0.7)]
    assert not any(u.faces for u in updates)  # never confident enough to start
    tracker = ConfirmingTracker(IouTracker(min_hits=1, max_missed=3), min_hits=3, start_score=0.8)
    assert not tracker.update([face(score=0.9)]).faces and not tracker.update([]).faces  # a gap: counting restarts
    assert not tracker.update([face(score=0.65)]).faces and not tracker.update([face(score=0.65)]).faces
    (confirmed,) = tracker.update([face(score=0.85)]).faces
    assert confirmed.is_new and tracker.update([face(score=0.62)]).faces[0].is_new is False  # weak ones continue
    with pytest.raises(ValueError, match="needs the frame"):
        ConfirmingTracker(IouTracker(), check=lambda image, box: 1.0, check_score=0.5).update([face()])


def test_the_default_tracker_confirms_through_bytetrack_at_track_min_hits():
    settings = Settings(_env_file=None, face_check_score=0.0)
    tracker = create_tracker(settings)
    firsts = [i for i in range(6) if any(f.is_new for f in tracker.update([face(100 + 2 * i)]).faces)]
    assert firsts == [settings.track_min_hits - 1]  # third frame, as before the confirmation wrapper


def test_keypoints_in_a_face_geometry_pass_and_others_do_not():
    upright = ((120, 120), (160, 120), (140, 140), (140, 160), (105, 125), (175, 125))
    box = (100.0, 100.0, 80.0, 80.0)
    assert keypoints_plausible(Detection(box, 0.9, upright), max_roll=45)
    upside_down = tuple((x, 280 - y) for x, y in upright)  # mouth above the eyes
    assert not keypoints_plausible(Detection(box, 0.9, upside_down), max_roll=45)
    c, s = np.cos(np.radians(60)), np.sin(np.radians(60))
    rolled = tuple((140 + c * (x - 140) - s * (y - 140), 140 + s * (x - 140) + c * (y - 140)) for x, y in upright)
    assert keypoints_plausible(Detection(box, 0.9, rolled), max_roll=70)
    assert not keypoints_plausible(Detection(box, 0.9, rolled), max_roll=45)
    far = upright[:5] + ((400, 125),)  # an ear far off the box
    assert not keypoints_plausible(Detection(box, 0.9, far), max_roll=45)
    assert keypoints_plausible(Detection(box, 0.9, None), max_roll=45)  # Haar: no keypoints to judge
