"""Tracks that ended, between their end and their last window's event. A track's last window is queued for
inference when the track ends, so its `track_lost` waits here until none of the track's windows waits any more: a
listener (the websocket, the LLM forwarder) always gets a track's last emotion event before its track_lost, never an
emotion of a person who has already left. Then the track's smoothing is forgotten.

`ended()` is called by the face workers and the supervisor instead of publishing track_lost; `settle()` by the
inference worker after each batch and while idle (so never while one of its batches is in flight)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from service.emotions import EmotionStage
from service.events import TrackEvent
from service.ingest.queues import BoundedQueue
from service.live.workers import PendingWindow


class EndedTracks:
    def __init__(self, stage: EmotionStage, windows: BoundedQueue[PendingWindow], publish: Callable[[object], None]):
        self.stage, self.windows, self.publish = stage, windows, publish
        self._pending: dict[tuple[str, int], TrackEvent] = {}
        self._lock = threading.Lock()

    def ended(self, event: TrackEvent) -> None:
        """A track_lost to publish once the track's windows are classified (or dropped)."""
        with self._lock:
            self._pending[(event.source, event.track_id)] = event

    def settle(self) -> None:
        """Publish the track_lost of every ended track none of whose windows still waits, and forget its
        smoothing."""
        with self._lock:
            pending = list(self._pending.items())
        for (source, track_id), event in pending:
            if self.windows.holds(lambda p: p.source == source and p.window.track_id == track_id):
                continue  # its last window is still to come
            with self._lock:
                self._pending.pop((source, track_id), None)
            self.publish(event)
            self.stage.forget(source, track_id)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)
