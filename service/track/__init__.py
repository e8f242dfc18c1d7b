"""Tracking: stable ids for faces across frames, behind one interface."""

from service.track.base import FaceTracker, TrackedFace, TrackUpdate
from service.track.iou import IouTracker, iou

__all__ = ["FaceTracker", "IouTracker", "TrackUpdate", "TrackedFace", "iou"]
