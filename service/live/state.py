"""What the service currently sees: per source, its status and the tracks in view with their current labels.
Written by the workers, read by GET /v1/state and by the prompt formatter (which describes everyone in view)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from service.events import Box


@dataclass
class TrackView:
    track_id: int
    box: Box
    first_seen: float
    last_seen: float
    label: str | None = None
    confidence: float | None = None
    probs: dict[str, float] | None = None
    t_start: float | None = None  # of the window the label came from
    t_end: float | None = None


@dataclass
class SourceView:
    name: str
    kind: str
    frame_width: int = 0
    tracks: dict[int, TrackView] = field(default_factory=dict)


class LiveState:
    def __init__(self):
        self._lock = threading.Lock()
        self._sources: dict[str, SourceView] = {}

    def add_source(self, name: str, kind: str) -> None:
        with self._lock:
            self._sources.setdefault(name, SourceView(name, kind))

    def track_seen(self, source: str, track_id: int, box: Box, t: float, frame_width: int) -> None:
        with self._lock:
            view = self._sources[source]
            view.frame_width = frame_width
            track = view.tracks.get(track_id)
            if track is None:
                view.tracks[track_id] = TrackView(track_id, box, t, t)
            else:
                track.box, track.last_seen = box, t

    def track_lost(self, source: str, track_id: int) -> None:
        with self._lock:
            self._sources[source].tracks.pop(track_id, None)

    def set_emotion(self, source: str, track_id: int, label: str, confidence: float, probs: dict[str, float],
                    t_start: float, t_end: float) -> None:
        with self._lock:
            track = self._sources[source].tracks.get(track_id)
            if track is not None:  # the track may have ended while its window was in inference
                track.label, track.confidence, track.probs = label, confidence, probs
                track.t_start, track.t_end = t_start, t_end

    def tracks(self, source: str) -> tuple[list[TrackView], int]:
        """Copies of the tracks in view, and the frame width (for left/right wording)."""
        with self._lock:
            view = self._sources[source]
            return [TrackView(**vars(t)) for t in view.tracks.values()], view.frame_width

    def sources(self) -> list[str]:
        with self._lock:
            return list(self._sources)
