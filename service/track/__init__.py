"""Tracking: stable ids for faces across frames, behind one interface."""

from __future__ import annotations

from service.track.base import FaceTracker, TrackedFace, TrackUpdate
from service.track.iou import IouTracker, iou

__all__ = ["FaceTracker", "IouTracker", "TrackUpdate", "TrackedFace", "create_tracker", "iou"]


def create_tracker(settings) -> FaceTracker:
    """The configured tracker for one source (each source needs its own: trackers keep state)."""
    if settings.tracker == "iou":
        return IouTracker(settings.track_iou, settings.track_max_missed, settings.track_min_hits)
    from service.track.bytetrack import ByteTrackFaceTracker

    return ByteTrackFaceTracker(frame_rate=settings.sample_fps, max_missed=settings.track_max_missed,
                                min_hits=settings.track_min_hits, activation_score=settings.detection_score)
