"""Confirmation of new tracks: a track is a person only after its first frames say so.

Every tracker (ByteTrack, IoU) runs inside with min_hits 1, so each candidate gets an id at once; this wrapper keeps
a candidate hidden (no face out, no track_new, no windows, nothing in the live view or the prompts) until, over
`min_hits` consecutive frames, it was seen every frame, at least one of its detections scored `start_score` (a
track is born from a confident detection; weaker ones only continue it), and, when a face check is given, a crop
around it looked like a face (mean score of `check` over those frames at least `check_score`). Once confirmed, it
is a track until the inner tracker loses it; a candidate that never confirms ends silently.

The face check costs about a detection, so it runs on a candidate's first frames only: judged on its first
`min_hits` consecutive frames and found wanting, a candidate is rejected and not checked while `retry_frames` pass,
then judged again on fresh frames (a person who turned towards the camera is found; a background that stays costs
two checks a second instead of eight). A candidate that keeps missing frames before it can be judged is judged on
MAX_UNJUDGED checks. 0 retry_frames: rejected for as long as the inner tracker keeps it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from service.detect.base import Detection
from service.track.base import FaceTracker, TrackedFace, TrackUpdate


# Face checks a candidate may cost without a judgement (its count restarted by missed frames): a phantom that flickers
# in and out is judged on these, not checked on every frame it shows up.
MAX_UNJUDGED = 4


@dataclass
class _Candidate:
    scores: deque  # detector scores of its latest consecutive frames (bounded: the frames confirmation needs)
    checks: deque  # face-check scores of the same frames
    last_frame: int = -1
    unjudged: int = 0  # face checks since its last judgement
    rejected_at: int | None = None  # the frame of its last judgement, when it was found wanting


class ConfirmingTracker(FaceTracker):
    """`check(image, box) -> score` (e.g. service.detect.blazeface.FaceLikeCrop.score), or None for no face check."""

    def __init__(self, inner: FaceTracker, min_hits: int = 3, start_score: float = 0.0, check=None,
                 check_score: float = 0.0, retry_frames: int = 8):
        self.inner, self.min_hits, self.start_score = inner, max(1, min_hits), start_score
        self.retry_frames = retry_frames
        self.check, self.check_score = (check if check_score > 0 else None), check_score
        self._candidates: dict[int, _Candidate] = {}
        self._confirmed: set[int] = set()
        self._frame = 0

    def update(self, detections: list[Detection], image: np.ndarray | None = None) -> TrackUpdate:
        if self.check is not None and image is None:
            raise ValueError("the face check of new tracks needs the frame: update(detections, image)")
        self._frame += 1
        inner = self.inner.update(detections, image)
        faces = []
        for face in inner.faces:
            if face.track_id in self._confirmed:
                faces.append(TrackedFace(face.track_id, face.detection, is_new=False))
            elif self._probation(face, image):
                self._confirmed.add(face.track_id)
                del self._candidates[face.track_id]
                faces.append(TrackedFace(face.track_id, face.detection, is_new=True))
        for track_id in inner.lost:
            self._candidates.pop(track_id, None)
        lost = [track_id for track_id in inner.lost if track_id in self._confirmed]
        self._confirmed.difference_update(lost)
        return TrackUpdate(faces=faces, lost=lost)

    def _probation(self, face: TrackedFace, image: np.ndarray | None) -> bool:
        """One more frame of a candidate; whether it is now confirmed."""
        if face.track_id not in self._candidates:
            kept = max(1, self.min_hits - self.inner.id_lag)  # the frames confirmation looks at
            self._candidates[face.track_id] = _Candidate(deque(maxlen=kept), deque(maxlen=kept))
        candidate = self._candidates[face.track_id]
        if candidate.rejected_at is not None:
            if not self.retry_frames or self._frame - candidate.rejected_at < self.retry_frames:
                return False
            candidate.rejected_at = None  # judged again, on fresh frames
            candidate.scores.clear()
            candidate.checks.clear()
        if candidate.last_frame != self._frame - 1:  # a gap: its count starts again (as SORT's min_hits)
            candidate.scores.clear()
            candidate.checks.clear()
        candidate.last_frame = self._frame
        candidate.scores.append(face.detection.score)
        if self.check is not None:
            candidate.checks.append(self.check(image, face.detection.box))
            candidate.unjudged += 1
        judged = len(candidate.scores) + self.inner.id_lag >= self.min_hits
        if not judged and (self.check is None or candidate.unjudged < MAX_UNJUDGED):
            return False
        confirmed = (judged and max(candidate.scores) >= self.start_score
                     and (self.check is None or float(np.mean(candidate.checks)) >= self.check_score))
        # With a face check (about a detection's cost), a candidate that does not pass rests for retry_frames;
        # without one, its window slides on (a later confident detection may still start it).
        if not confirmed and self.check is not None:
            candidate.rejected_at, candidate.unjudged = self._frame, 0
        return confirmed

    def flush(self) -> list[int]:
        ids = [track_id for track_id in self.inner.flush() if track_id in self._confirmed]
        self._candidates.clear()
        self._confirmed.clear()
        return ids
