"""Smoothing state of live tracks that ended: forgotten once none of their windows waits for inference (a track's
last window is queued before its track_lost is published, so the end of a track is not the end of its windows)."""

from __future__ import annotations

import threading

from service.emotions import EmotionStage
from service.events import EmotionEvent, HeartbeatEvent, TrackEvent
from service.ingest.queues import BoundedQueue
from service.live.workers import PendingWindow


class EndedTracks:
    def __init__(self, stage: EmotionStage, windows: BoundedQueue[PendingWindow]):
        self.stage, self.windows = stage, windows
        self._ended: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def note_event(self, event: EmotionEvent | TrackEvent | HeartbeatEvent) -> None:
        """A bus sink: remembers tracks that ended."""
        if isinstance(event, TrackEvent) and event.type == "track_lost":
            with self._lock:
                self._ended.add((event.source, event.track_id))

    def forget_ended(self) -> None:
        """Drop the smoothing of ended tracks none of whose windows still waits (after each inference batch)."""
        with self._lock:
            ended = list(self._ended)
        for source, track_id in ended:
            if self.windows.holds(lambda p: p.source == source and p.window.track_id == track_id):
                continue  # its last window is still to come
            self.stage.forget(source, track_id)
            with self._lock:
                self._ended.discard((source, track_id))
