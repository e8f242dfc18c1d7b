"""Emotion events of the live runtime: a window's probabilities -> per-track smoothing -> the live state -> a
prompt describing everyone in view of that source -> an EmotionEvent, published (and its frame-to-event latency
observed). Smoothing state of a track that ended is forgotten once none of its windows waits for inference."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from service.config import Settings
from service.events import EmotionEvent
from service.inference.base import Engine
from service.ingest.queues import BoundedQueue
from service.live.state import LiveState
from service.live.workers import PendingWindow
from service.pipeline import emotion_event
from service.prompts import FaceState, describe_scene
from service.smoothing import Smoother


class EmotionEvents:
    def __init__(self, settings: Settings, engine: Engine, state: LiveState, windows: BoundedQueue[PendingWindow],
                 publish: Callable[[object], None], clock: Callable[[], float],
                 observe_frame_to_event: Callable[[float], None] | None = None):
        self.settings, self.engine, self.state, self.windows = settings, engine, state, windows
        self.publish, self.clock, self.observe_frame_to_event = publish, clock, observe_frame_to_event
        self.smoother = Smoother(settings.smoothing, settings.ema_alpha, settings.hysteresis_margin,
                                 settings.smoother_max_tracks)
        self._ended: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def publish_window(self, pending: PendingWindow, raw: np.ndarray) -> None:
        """Smooth, describe, publish (called by the inference worker for each classified window)."""
        with self._lock:  # a replaced inference worker may still be finishing its batch beside its successor
            label_index, smoothed = self.smoother.update(pending.source, pending.window.track_id, raw)
        self.publish(self.build(pending, label_index, smoothed, raw))
        if self.observe_frame_to_event:
            # The window's last frame was captured at t_end on the same clock.
            self.observe_frame_to_event(self.clock() - pending.window.t_end)

    def build(self, pending: PendingWindow, label_index: int, smoothed: np.ndarray, raw: np.ndarray) -> EmotionEvent:
        labels = self.engine.labels
        window, source = pending.window, pending.source
        confidence = float(smoothed[label_index])
        self.state.set_emotion(source, window.track_id, labels[label_index], confidence,
                               {label: round(float(p), 4) for label, p in zip(labels, smoothed)},
                               window.t_start, window.t_end)
        tracks, width = self.state.tracks(source)
        faces = [FaceState(t.track_id, t.label, t.confidence, t.box, t.t_start, t.t_end)
                 for t in tracks if t.label is not None]
        if not any(f.track_id == window.track_id for f in faces):  # its track ended meanwhile: still describe it
            faces.append(FaceState(window.track_id, labels[label_index], confidence, window.box, window.t_start,
                                   window.t_end))
        prompt = describe_scene(faces, width or 1, self.settings.prompts)
        return emotion_event(window, smoothed, labels, source, self.engine.spec.name, self.settings.prompts,
                             label_index, prompt, raw_probs=raw, va_table=self.settings.valence_arousal)

    # ---- ended tracks ---------------------------------------------------------------------------------------

    def note_event(self, event) -> None:
        """A bus sink: remembers tracks that ended."""
        if event.type == "track_lost":
            with self._lock:
                self._ended.add((event.source, event.track_id))

    def forget_ended(self) -> None:
        """Drop the smoothing of ended tracks none of whose windows still waits (after each inference batch)."""
        with self._lock:
            ended = list(self._ended)
        for source, track_id in ended:
            if self.windows.holds(lambda p: p.source == source and p.window.track_id == track_id):
                continue  # its last window is still to come
            with self._lock:
                self.smoother.forget(source, track_id)
                self._ended.discard((source, track_id))
