"""The tracker interface: detections of one frame in, faces with stable track ids out, plus tracks that ended."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from service.detect.base import Detection


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    detection: Detection
    is_new: bool  # first frame of this track (with ConfirmingTracker: the frame it is confirmed)


@dataclass(frozen=True)
class TrackUpdate:
    faces: list[TrackedFace] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # track ids that ended at this frame


class FaceTracker(ABC):
    # Frames between a face's first detection and the first update that gives its track an id (ByteTrack names a
    # track from its second frame on, even with min_hits 1); confirmation counts them as seen.
    id_lag: int = 0

    @abstractmethod
    def update(self, detections: list[Detection], image: np.ndarray | None = None) -> TrackUpdate:
        """Match this frame's detections to the live tracks (`image`: the frame, for trackers that look at it)."""

    @abstractmethod
    def flush(self) -> list[int]:
        """End every live track (end of a clip) and return their ids."""
