"""The tracker interface: detections of one frame in, faces with stable track ids out, plus tracks that ended."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from service.detect.base import Detection


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    detection: Detection
    is_new: bool  # first frame of this track


@dataclass(frozen=True)
class TrackUpdate:
    faces: list[TrackedFace] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # track ids that ended at this frame


class FaceTracker(ABC):
    @abstractmethod
    def update(self, detections: list[Detection]) -> TrackUpdate:
        """Match this frame's detections to the live tracks."""

    @abstractmethod
    def flush(self) -> list[int]:
        """End every live track (end of a clip) and return their ids."""
