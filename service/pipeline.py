"""The per-source perception chain after ingest: detect -> track -> crop -> window buffers, then windows -> emotion
events. One `FacePipeline` per source; live streams and clips both drive it frame by frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.bundle import BundleSpec
from service.config import Settings
from service.crops import crop_face, crop_scene
from service.detect.base import FaceDetector
from service.events import EmotionEvent, TrackEvent
from service.metrics import StageTimer
from service.prompts import PromptTemplates, chat_messages, emotion_prompt
from service.track.base import FaceTracker
from service.windows import Window, WindowBuffers


@dataclass
class FrameResult:
    lifecycle: list[TrackEvent] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    faces: int = 0


class FacePipeline:
    """Detects, tracks and crops faces of one source and fills their window buffers."""

    def __init__(self, source: str, spec: BundleSpec, settings: Settings, detector: FaceDetector,
                 tracker: FaceTracker, timer: StageTimer | None = None):
        self.source, self.spec, self.settings = source, spec, settings
        self.detector, self.tracker = detector, tracker
        self.timer = timer or StageTimer()
        self.buffers = WindowBuffers(spec.num_frames, settings.hop)
        self._last_seen: dict[int, tuple[float, tuple[float, float, float, float]]] = {}
        self.last_faces: list = []  # the tracked faces of the latest frame (for the live state)
        self.frames_processed = 0  # numbers the frames, so the engine can recognise a crop it has already encoded
        # A track shorter than this never gets a stretched window at its end (too little to judge).
        self.min_partial_frames = max(2, spec.num_frames // 2)

    def process(self, t: float, image: np.ndarray) -> FrameResult:
        result = FrameResult()
        frame_id = self.frames_processed
        self.frames_processed += 1
        with self.timer.time("detect"):
            detections = self.detector.detect(image)
        with self.timer.time("track"):
            update = self.tracker.update(detections)
        for track_id in update.lost:
            self._end_track(track_id, result)
        result.faces = len(update.faces)
        self.last_faces = update.faces
        if not update.faces:
            return result
        with self.timer.time("crop"):
            scene = crop_scene(image, self.spec.image_size, self.spec.channels) if self.spec.needs_scene else None
            for face in update.faces:
                box = face.detection.box
                if face.is_new:
                    result.lifecycle.append(TrackEvent(source=self.source, type="track_new", track_id=face.track_id,
                                                       t=t, box=box))
                self._last_seen[face.track_id] = (t, box)
                crop = crop_face(image, box, self.spec.image_size, self.spec.channels, self.settings.face_margin)
                window = self.buffers.push(face.track_id, crop, t, box, scene, frame_id)
                if window is not None:
                    result.windows.append(window)
        return result

    @property
    def has_tracks(self) -> bool:
        return bool(self._last_seen)

    def finish(self) -> FrameResult:
        """End of the source: every live track ends, short ones get their stretched window."""
        result = FrameResult()
        for track_id in self.tracker.flush():
            self._end_track(track_id, result)
        return result

    def _end_track(self, track_id: int, result: FrameResult) -> None:
        t, box = self._last_seen.pop(track_id)
        window = self.buffers.end(track_id, self.min_partial_frames)
        if window is not None:
            result.windows.append(window)
        result.lifecycle.append(TrackEvent(source=self.source, type="track_lost", track_id=track_id, t=t, box=box))


def emotion_event(window: Window, probs: np.ndarray, labels: list[str], source: str, model: str,
                  templates: PromptTemplates | None = None, label_index: int | None = None,
                  prompt: str | None = None) -> EmotionEvent:
    """A classified window as Contract 2's emotion event, with a prompt and chat messages (pure). By default the label
    is the most probable one and the prompt describes this one face; the live runtime passes its smoothed label and a
    prompt describing everyone in view."""
    best = int(np.argmax(probs)) if label_index is None else label_index
    confidence = float(probs[best])
    templates = templates or PromptTemplates()
    if prompt is None:
        prompt = emotion_prompt(labels[best], confidence, window.t_end - window.t_start, templates)
    return EmotionEvent(
        source=source, track_id=window.track_id, t_start=round(window.t_start, 3), t_end=round(window.t_end, 3),
        label=labels[best], confidence=round(confidence, 4),
        probs={label: round(float(p), 4) for label, p in zip(labels, probs)},
        box=tuple(round(v, 1) for v in window.box), model=model,
        prompt=prompt, messages=chat_messages(prompt, templates),
    )


def classify(engine, windows: list[Window], source: str, max_batch: int, timer: StageTimer,
             templates: PromptTemplates | None = None, cache=None) -> list[EmotionEvent]:
    """Windows from any tracks, batched max_batch at a time through the engine (with a frame-feature cache, each
    frame is encoded once however many windows share it)."""
    events = []
    for i in range(0, len(windows), max_batch):
        batch = windows[i:i + max_batch]
        with timer.time("infer"):
            probs = engine.predict_windows([(source, w) for w in batch], cache)
        events.extend(emotion_event(w, p, engine.labels, source, engine.spec.name, templates)
                      for w, p in zip(batch, probs))
    return events
