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
    tracker = ByteTrackFaceTracker(max_missed=3, min_hits=2)
    ids_per_frame = []
    for i in range(12):
        update = tracker.update([det(100 + 4 * i, 100), det(400 - 4 * i, 110)])
        ids_per_frame.append({f.detection.box[0] < 250: f.track_id for f in update.faces})
    confirmed = [ids for ids in ids_per_frame if len(ids) == 2]
    assert len(confirmed) >= 9
    assert all(ids == confirmed[0] for ids in confirmed) and confirmed[0][True] != confirmed[0][False]
    assert min(confirmed[0].values()) >= 1


def test_track_new_once_and_track_lost_after_max_missed():
    tracker = ByteTrackFaceTracker(max_missed=3, min_hits=2)
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
    tracker = ByteTrackFaceTracker(max_missed=3, min_hits=1)
    for i in range(3):
        faces = tracker.update([det(100, 100)]).faces
    assert tracker.flush() == [faces[0].track_id]


def test_a_face_unseen_for_half_a_second_comes_back_under_its_own_id_and_leaves_no_ghost():
    """track_lost_s is converted at the sampling rate for ByteTrack too. Before, ByteTrack read its buffer of 8 as
    frames at 30 fps (3 updates at 8 fps): after 4 missed frames the face came back under a new id while its old
    track lingered until our own count ran out."""
    settings = Settings(_env_file=None, sample_fps=8.0, track_lost_s=1.0, face_check_score=0, track_min_hits=1)
    tracker = create_tracker(settings)
    ids = [f.track_id for i in range(5) for f in tracker.update([det(100 + i, 100)]).faces]
    lost = [tracker.update([]).lost for _ in range(4)]  # 0.5 s without a detection
    back = tracker.update([det(106, 100)])
    assert set(ids) == {ids[0]} and lost == [[]] * 4
    assert [f.track_id for f in back.faces] == [ids[0]] and not back.faces[0].is_new and back.lost == []
    # Gone for good: it survives 1 s unseen (8 sampled frames) and is lost on the next one, once.
    lost = [tracker.update([]).lost for _ in range(10)]
    assert lost == [[]] * 8 + [[ids[0]], []] and tracker.flush() == []


def test_track_lost_s_is_counted_in_sampled_frames():
    assert Settings(_env_file=None, sample_fps=8, track_lost_s=1.0).track_lost_frames == 8
    assert Settings(_env_file=None, sample_fps=15, track_lost_s=0.4).track_lost_frames == 6
    assert Settings(_env_file=None, track_max_missed=5).track_lost_frames == 5  # the deprecated setting, as it was
    assert ByteTrackFaceTracker(max_missed=6).max_missed == 6


def test_the_face_check_runs_on_a_candidates_first_frames_then_rests_before_judging_again():
    """Before: a candidate that never confirmed was checked (about a detection's cost) on every frame, forever."""
    from service.track.confirm import MAX_UNJUDGED

    calls = []

    def phantom(image, box):
        calls.append(box)
        return 0.1  # never face-like

    def tracker(retry_frames, check=phantom):
        return ConfirmingTracker(ByteTrackFaceTracker(max_missed=8, min_hits=1, activation_score=0.6), min_hits=3,
                                 start_score=0.6, check=check, check_score=0.6, retry_frames=retry_frames)

    never = tracker(0)
    for _ in range(40):
        assert never.update([det(100, 100)], image=object()).faces == []
    assert len(calls) == 3 - never.inner.id_lag  # judged on its first frames, then left alone
    calls.clear()
    resting = tracker(8)
    for _ in range(40):
        assert resting.update([det(100, 100)], image=object()).faces == []
    # Two checks per judgement, the next one 8 frames after the last: 10 checks in 40 frames, not 40.
    assert len(calls) == 10
    # One that flickers (a missed frame every other frame) is judged on a few checks too.
    calls.clear()
    flicker = tracker(0)
    for i in range(60):
        flicker.update([det(300, 300)] if i % 2 else [], image=object())
    assert len(calls) == MAX_UNJUDGED
    # A real face is confirmed on its first frames; one that looks like a face only later is found at its retry.
    real = tracker(8, check=lambda image, box: 0.9)
    assert [f.is_new for _ in range(4) for f in real.update([det(100, 100)], image=object()).faces] == [True, False]
    frame = {"n": 0}
    turning = tracker(8, check=lambda image, box: 0.9 if frame["n"] >= 5 else 0.1)  # turns to the camera at 5
    confirmed_at = None
    for n in range(30):
        frame["n"] = n
        if any(f.is_new for f in turning.update([det(100, 100)], image=object()).faces):
            confirmed_at = n
    assert confirmed_at is not None and 5 < confirmed_at <= 2 + 8 + 2
