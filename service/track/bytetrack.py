"""ByteTrack (the maintained implementation in the `trackers` package) behind our FaceTracker interface.

ByteTrack gives ids and Kalman-predicted association, including low-score detections in a second pass; it does not
announce when a track ends, so lost tracks are derived here: unseen for more than max_missed updates.
"""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from service.detect.base import Detection
from service.track.base import FaceTracker, TrackedFace, TrackUpdate


class ByteTrackFaceTracker(FaceTracker):
    id_lag = 1  # a track spawned in one frame gets its id when matched in the next

    def __init__(self, max_missed: int = 8, min_hits: int = 3, min_iou: float = 0.1, activation_score: float = 0.5):
        """`max_missed`: updates (sampled frames) a track survives unseen, in ByteTrack and here alike.
        `activation_score`: ByteTrack's high/low split: detections this confident start tracks and are matched
        first; weaker ones only continue tracks that the first pass left unmatched."""
        # `trackers` reads lost_track_buffer as frames at 30 fps and scales it by frame_rate / 30: given at 30 fps,
        # it is exactly max_missed of our updates, whatever the sampling rate (given at 8 fps, a buffer of 8 was 3
        # updates, and a face unseen for half a second came back under a new id beside its old track's ghost).
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max_missed, frame_rate=30.0, track_activation_threshold=activation_score,
            minimum_consecutive_frames=min_hits, minimum_iou_threshold=min_iou,
            high_conf_det_threshold=activation_score)
        self.max_missed = self._tracker.maximum_frames_without_update
        self._missed: dict[int, int] = {}  # live track id -> updates since last seen

    def update(self, detections: list[Detection], image=None) -> TrackUpdate:
        if detections:
            xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (d.box for d in detections)], dtype=np.float32)
            scores = np.array([d.score for d in detections], dtype=np.float32)
            found = sv.Detections(xyxy=xyxy, confidence=scores, data={"index": np.arange(len(detections))})
        else:
            found = sv.Detections.empty()
        result = self._tracker.update(found)
        faces = []
        seen = set()
        for tracker_id, index in zip(result.tracker_id, result.data.get("index", [])):
            if tracker_id < 0:
                continue  # not (yet) a confirmed track
            track_id = int(tracker_id) + 1  # people count from 1
            seen.add(track_id)
            faces.append(TrackedFace(track_id, detections[int(index)], is_new=track_id not in self._missed))
            self._missed[track_id] = 0
        lost = []
        for track_id in list(self._missed):
            if track_id in seen:
                continue
            self._missed[track_id] += 1
            if self._missed[track_id] > self.max_missed:
                lost.append(track_id)
                del self._missed[track_id]
        return TrackUpdate(faces=faces, lost=lost)

    def flush(self) -> list[int]:
        ids = list(self._missed)
        self._missed.clear()
        self._tracker.reset()
        return ids
