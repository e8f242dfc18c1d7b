"""Tracking: stable ids for faces across frames, behind one interface."""

from __future__ import annotations

from service.track.base import FaceTracker, TrackedFace, TrackUpdate
from service.track.confirm import ConfirmingTracker
from service.track.iou import IouTracker, iou

__all__ = ["ConfirmingTracker", "FaceTracker", "IouTracker", "TrackUpdate", "TrackedFace", "create_tracker", "iou"]


def create_tracker(settings) -> FaceTracker:
    """The configured tracker for one source (each source needs its own: trackers keep state), inside the
    confirmation of new tracks (track_min_hits frames, track_start_score, the face check)."""
    if settings.tracker == "iou":
        inner = IouTracker(settings.track_iou, settings.track_lost_frames, min_hits=1)
    else:
        from service.track.bytetrack import ByteTrackFaceTracker

        inner = ByteTrackFaceTracker(max_missed=settings.track_lost_frames, min_hits=1,
                                     activation_score=settings.track_start_score)
    check = None
    if settings.face_check_score > 0:
        from service.detect.blazeface import FaceLikeCrop

        check = FaceLikeCrop(settings.face_check_scale, settings.detect_threads).score
    return ConfirmingTracker(inner, settings.track_min_hits, settings.track_start_score, check,
                             settings.face_check_score, round(settings.face_check_retry_s * settings.sample_fps))
