from service.detect.base import Detection
from service.track import IouTracker, iou


def det(x, y, w=50, h=50):
    return Detection((x, y, w, h), 1.0)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_ids_are_stable_while_faces_move_and_confirmed_after_min_hits():
    tracker = IouTracker(min_iou=0.3, max_missed=2, min_hits=3)
    updates = [tracker.update([det(100 + 5 * i, 100), det(400 - 5 * i, 120)]) for i in range(6)]
    assert updates[0].faces == [] and updates[1].faces == []  # tentative
    confirmed = updates[2].faces
    assert [f.is_new for f in confirmed] == [True, True]
    ids = {f.track_id for f in confirmed}
    assert len(ids) == 2
    for update in updates[3:]:
        assert {f.track_id for f in update.faces} == ids and not any(f.is_new for f in update.faces)


def test_a_one_off_false_positive_never_becomes_a_track():
    tracker = IouTracker(min_hits=3)
    for i in range(5):
        extra = [det(500, 300)] if i == 2 else []
        update = tracker.update([det(100, 100)] + extra)
        assert all(f.detection.box[0] == 100 for f in update.faces)
        assert update.lost == []


def test_track_survives_short_gaps_and_is_lost_after_max_missed():
    tracker = IouTracker(max_missed=2, min_hits=1)
    (face,) = tracker.update([det(100, 100)]).faces
    assert tracker.update([]).lost == []
    assert tracker.update([]).lost == []
    assert tracker.update([det(102, 100)]).faces[0].track_id == face.track_id  # back within the gap
    for _ in range(2):
        assert tracker.update([]).lost == []
    assert tracker.update([]).lost == [face.track_id]
    assert tracker.flush() == []


def test_a_face_far_from_every_track_starts_a_new_one():
    tracker = IouTracker(min_hits=1)
    first = tracker.update([det(0, 0)]).faces[0].track_id
    faces = tracker.update([det(300, 300)]).faces
    assert faces[0].track_id != first and faces[0].is_new


def test_flush_returns_live_tracks_only():
    tracker = IouTracker(min_hits=2)
    tracker.update([det(0, 0), det(300, 0)])
    tracker.update([det(0, 0)])
    tracker.update([det(0, 0), det(600, 0)])  # the second one is a new tentative track
    assert len(tracker.flush()) == 1
