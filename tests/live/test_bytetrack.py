from service.config import Settings
from service.detect.base import Detection
from service.track import ConfirmingTracker, create_tracker
from service.track.bytetrack import ByteTrackFaceTracker
from service.track.iou import IouTracker


def det(x, y, score=0.9):
    return Detection((x, y, 60.0, 60.0), score)


def test_factory_picks_the_configured_tracker_inside_the_confirmation_of_new_tracks():
    default = create_tracker(Settings(_env_file=None))
    assert isinstance(default, ConfirmingTracker) and isinstance(default.inner, ByteTrackFaceTracker)
    assert default.check is not None  # the face check of new tracks is on by default
    assert isinstance(create_tracker(Settings(_env_file=None, tracker="iou")).inner, IouTracker)


def test_two_people_keep_their_ids_while_moving_and_crossing_nothing():
    tracker = ByteTrackFaceTracker(frame_rate=8, max_missed=3, min_hits=2)
    ids_per_frame = []
    for i in range(12):
        update = tracker.update([det(100 + 4 * i, 100), det(400 - 4 * i, 110)])
        ids_per_frame.append({f.detection.box[0] < 250: f.track_id for f in update.faces})
    confirmed = [ids for ids in ids_per_frame if len(ids) == 2]
    assert len(confirmed) >= 9
    assert all(ids == confirmed[0] for ids in confirmed) and confirmed[0][True] != confirmed[0][False]
    assert min(confirmed[0].values()) >= 1


def test_track_new_once_and_track_lost_after_max_missed():
    tracker = ByteTrackFaceTracker(frame_rate=8, max_missed=3, min_hits=2)
    news = []
    for i in range(5):
        news += [f.track_id for f in tracker.update([det(100 + i, 100)]).faces if f.is_new]
    assert len(news) == 1
    lost = []
    for _ in range(5):
        lost += tracker.update([]).lost
    assert lost == news
    assert tracker.flush() == []


def test_flush_ends_live_tracks():
    tracker = ByteTrackFaceTracker(frame_rate=8, max_missed=3, min_hits=1)
    for i in range(3):
        faces = tracker.update([det(100, 100)]).faces
    assert tracker.flush() == [faces[0].track_id]
