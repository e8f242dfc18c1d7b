"""Greedy IoU matching: enough for recorded clips where faces move little between sampled frames.

A new track stays tentative until it has been matched `min_hits` frames in a row (as in SORT), so a detector's
one-off false positive never becomes a track; a tentative track that misses a frame is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.detect.base import Detection
from service.track.base import FaceTracker, TrackedFace, TrackUpdate


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    box: tuple[float, float, float, float]
    hits: int = 1
    missed: int = 0
    track_id: int | None = None  # given when the track is confirmed


class IouTracker(FaceTracker):
    def __init__(self, min_iou: float = 0.3, max_missed: int = 8, min_hits: int = 3):
        self.min_iou, self.max_missed, self.min_hits = min_iou, max_missed, max(1, min_hits)
        self._tracks: list[_Track] = []
        self._next_id = 1

    def _match(self, detections: list[Detection]) -> dict[int, int]:
        """detection index -> track index, greedily by descending IoU."""
        pairs = sorted(((iou(t.box, d.box), ti, di) for ti, t in enumerate(self._tracks)
                        for di, d in enumerate(detections)), reverse=True)
        used_tracks: set[int] = set()
        matches: dict[int, int] = {}
        for overlap, ti, di in pairs:
            if overlap < self.min_iou:
                break
            if ti not in used_tracks and di not in matches:
                used_tracks.add(ti)
                matches[di] = ti
        return matches

    def update(self, detections: list[Detection], image=None) -> TrackUpdate:
        matches = self._match(detections)
        matched = set(matches.values())
        faces, lost, survivors = [], [], []
        for ti, track in enumerate(self._tracks):
            if ti in matched:
                survivors.append(track)
                continue
            track.missed += 1
            if track.track_id is None:
                continue  # tentative: a gap ends it silently
            if track.missed > self.max_missed:
                lost.append(track.track_id)
            else:
                survivors.append(track)
        for di, det in enumerate(detections):
            if di not in matches:
                survivors.append(track := _Track(det.box))
            else:
                track = self._tracks[matches[di]]
                track.box, track.missed, track.hits = det.box, 0, track.hits + 1
            is_new = track.track_id is None and track.hits >= self.min_hits
            if is_new:
                track.track_id, self._next_id = self._next_id, self._next_id + 1
            if track.track_id is not None:
                faces.append(TrackedFace(track.track_id, det, is_new=is_new))
        self._tracks = survivors
        return TrackUpdate(faces=faces, lost=lost)

    def flush(self) -> list[int]:
        ids = [t.track_id for t in self._tracks if t.track_id is not None]
        self._tracks = []
        return ids
