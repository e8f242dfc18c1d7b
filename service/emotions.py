"""Windows -> emotion events, the one home for clips and live: ready windows batched (max_batch at a time) through
the engine (a frame-feature cache encodes each frame once, however many windows share it), each track's
probabilities smoothed, the prompt written, a Contract 2 EmotionEvent per window where the track's rate allows
(`EventGate`: at most max_event_hz a second, plus every change of label).

Clip analysis (service/analyze.py) and the live inference worker (service/live/workers.py) both call
`EmotionStage.classify`. Their prompts differ in one named way, the event's `prompt_about`: a clip's event describes
its own face ("face"); a live event describes everyone in view of its source as the live state knows them when the
window is classified ("scene"), since the LLM answers whoever stands in front of the robot now."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Literal

import numpy as np

from service.config import Settings
from service.events import EmotionEvent, FaceReading, UncertainReason
from service.inference.base import LOCAL, Engine, Routed, predict_routed
from service.inference.engine import FrameFeatureCache
from service.metrics import StageTimer
from service.prompts import FaceState, PromptTemplates, chat_messages, describe_scene, emotion_prompt
from service.smoothing import Smoother
from service.state import LiveState
from service.valence_arousal import CATEGORY_VALENCE_AROUSAL, valence_arousal
from service.windows import Window

PromptAbout = Literal["face", "scene"]
# A person seen before is spoken of as back for this long into their new track; after that they are simply there.
BACK_TOLD_S = 60.0


def label_uncertainty(reading: FaceReading | None, confidence: float, min_confidence: float) -> UncertainReason | None:
    """Why an event's label is not to be trusted: its face's reason, else low_confidence under min_confidence."""
    if reading is not None and reading.uncertain_reason is not None:
        return reading.uncertain_reason
    return "low_confidence" if confidence < min_confidence else None


def back_after(reading: FaceReading | None, track_age_s: float) -> float | None:
    """How long a person seen before had been away, while their new track is young enough to say so."""
    if reading is None or not reading.seen_before or track_age_s > BACK_TOLD_S:
        return None
    return reading.absent_s


def emotion_event(window: Window, probs: np.ndarray, labels: list[str], source: str, model: str,
                  templates: PromptTemplates | None = None, label_index: int | None = None,
                  prompt: str | None = None, raw_probs: np.ndarray | None = None,
                  prompt_about: PromptAbout = "face",
                  va_table: Mapping[str, tuple[float, float]] = CATEGORY_VALENCE_AROUSAL,
                  model_va: np.ndarray | None = None, engine: str = LOCAL, min_confidence: float = 0.0,
                  track_age_s: float = 0.0) -> EmotionEvent:
    """A classified window as Contract 2's emotion event, with a prompt and chat messages (pure). `probs` are the
    smoothed probabilities the label and confidence come from, `raw_probs` the window's own model output (default:
    the same, i.e. no smoothing). By default the label is the most probable one and the prompt describes this one
    face; the live stage passes a prompt describing everyone in view (prompt_about="scene"). `model_va`: the
    model's own (valence, arousal) for the window, where its bundle has them (va_source "model"); else the
    category table's, from the smoothed probabilities. `engine`: where the window was classified (LOCAL, or the
    remote model's URL). The window's face reading gives person_id, quality, head pose and looking; its uncertain
    reason (or low_confidence under `min_confidence`) keeps the prompt from stating the emotion. `track_age_s`: how
    long the track has been seen (a person back is spoken of as such for BACK_TOLD_S)."""
    best = int(np.argmax(probs)) if label_index is None else label_index
    smoothed = {label: round(float(p), 4) for label, p in zip(labels, probs)}
    raw = smoothed if raw_probs is None else {label: round(float(p), 4) for label, p in zip(labels, raw_probs)}
    confidence = float(probs[best])
    templates = templates or PromptTemplates()
    va = valence_arousal(probs, labels, va_table, model_va)
    reading = window.reading
    reason = label_uncertainty(reading, confidence, min_confidence)
    if prompt is None:
        prompt = emotion_prompt(labels[best], confidence, window.t_end - window.t_start, templates,
                                back_after(reading, track_age_s), reading and reading.looking, reason is not None)
    return EmotionEvent(
        source=source, track_id=window.track_id, t_start=round(window.t_start, 3), t_end=round(window.t_end, 3),
        label=labels[best], confidence=round(confidence, 4),
        probs=smoothed, raw_probs=raw, smoothed_probs=smoothed,
        box=tuple(round(v, 1) for v in window.box), model=model, engine=engine,
        valence=va and va.valence, arousal=va and va.arousal, va_source=va and va.source,
        person_id=reading and reading.person_id, quality=reading and reading.quality, uncertain_reason=reason,
        head_pose=reading and reading.head_pose, looking=reading and reading.looking,
        prompt=prompt, prompt_about=prompt_about, messages=chat_messages(prompt, templates),
    )


class EventGate:
    """Which classified windows of a track become events: the first, every one whose label differs from the last
    published, and otherwise at most `max_hz` a second (window time). Windows come faster than a listener needs
    them (every hop sampled frames); the websocket, the event log and the LLM forwarder see this rate. Counts the
    label changes per source. Bounded like the smoother: least recently seen tracks are forgotten first."""

    def __init__(self, max_hz: float, max_tracks: int = 1024):
        self.min_gap_s, self.max_tracks = 1.0 / max_hz, max_tracks
        self._last: OrderedDict[tuple[str, int], tuple[float, int]] = OrderedDict()  # (t_end, label) published
        self.label_changes: Counter[str] = Counter()

    def admit(self, source: str, track_id: int, t: float, label: int) -> bool:
        key = (source, track_id)
        last = self._last.get(key)
        changed = last is not None and last[1] != label
        if changed:
            self.label_changes[source] += 1
        if last is not None and not changed and t - last[0] < self.min_gap_s:
            return False
        self._last[key] = (t, label)
        self._last.move_to_end(key)
        while len(self._last) > self.max_tracks:
            self._last.popitem(last=False)
        return True

    def forget(self, source: str, track_id: int) -> None:
        self._last.pop((source, track_id), None)


class EmotionStage:
    """Batch, predict, smooth, describe, event. `scene`: the live state, whose tracks a live event's prompt
    describes (their labels are updated here); None for a clip, whose events describe their own face."""

    def __init__(self, settings: Settings, engine: Engine, scene: LiveState | None = None):
        self.engine, self.scene = engine, scene
        self.max_batch, self.templates = settings.max_batch, settings.prompts
        self.va_table = settings.valence_arousal
        self.min_confidence = settings.uncertain_confidence
        self._first_t: dict[tuple[str, int], float] = {}  # a track's first window's start (clips: how old it is)
        self.smoother = Smoother(settings.smoothing, settings.ema_alpha, settings.hysteresis_margin,
                                 settings.smoother_max_tracks, settings.average_s, settings.switch_s)
        self.gate = EventGate(settings.max_event_hz, settings.smoother_max_tracks)
        self._lock = threading.Lock()  # a replaced live inference worker may still finish a batch beside its successor

    def classify(self, windows: list[tuple[str, Window]], cache: FrameFeatureCache | None,
                 timer: StageTimer | None = None) -> list[EmotionEvent | None]:
        """Windows of any sources and tracks (each track's in time order) -> in the same order, each one's event,
        or None where the track's event rate (EventGate) holds it back."""
        timer = timer or StageTimer()
        events = []
        for i in range(0, len(windows), self.max_batch):
            batch = windows[i:i + self.max_batch]
            with timer.time("infer"):
                routed = predict_routed(self.engine, batch, cache)
            va = routed.valence_arousal
            events.extend(self.event(source, window, raw, None if va is None else va[j], routed)
                          for j, ((source, window), raw) in enumerate(zip(batch, routed.probs)))
        return events

    def event(self, source: str, window: Window, raw: np.ndarray, model_va: np.ndarray | None = None,
              routed: Routed | None = None) -> EmotionEvent | None:
        """One classified window: smoothed with its track's earlier windows, described, as an event (None: held
        back by the event rate). `model_va`: the window's own (valence, arousal) from the model, where it has them.
        `routed`: where it ran and on which model (default: here, the engine's)."""
        with self._lock:
            label_index, smoothed = self.smoother.update(source, window.track_id, raw, window.t_end)
            if not self.gate.admit(source, window.track_id, window.t_end, label_index):
                return None
            age = window.t_end - self._first_t.setdefault((source, window.track_id), window.t_start)
        labels = self.engine.labels
        model, engine = (routed.model, routed.engine) if routed else (self.engine.spec.name, LOCAL)
        if self.scene is None:
            return emotion_event(window, smoothed, labels, source, model, self.templates, label_index, raw_probs=raw,
                                 va_table=self.va_table, model_va=model_va, engine=engine,
                                 min_confidence=self.min_confidence, track_age_s=age)
        confidence = float(smoothed[label_index])
        reason = label_uncertainty(window.reading, confidence, self.min_confidence)
        prompt = self._describe_scene(source, window, labels[label_index], confidence, smoothed, reason)
        return emotion_event(window, smoothed, labels, source, model, self.templates, label_index, prompt,
                             raw_probs=raw, prompt_about="scene", va_table=self.va_table, model_va=model_va,
                             engine=engine, min_confidence=self.min_confidence, track_age_s=age)

    def forget(self, source: str, track_id: int) -> None:
        """Drop the smoothing of a track that ended and has no window left to classify."""
        with self._lock:
            self.smoother.forget(source, track_id)
            self.gate.forget(source, track_id)
            self._first_t.pop((source, track_id), None)

    def _describe_scene(self, source: str, window: Window, label: str, confidence: float,
                        smoothed: np.ndarray, reason: UncertainReason | None) -> str:
        labels = self.engine.labels
        self.scene.set_emotion(source, window.track_id, label, confidence,
                               {name: round(float(p), 4) for name, p in zip(labels, smoothed)},
                               window.t_start, window.t_end, reason)
        tracks, width = self.scene.tracks(source)
        faces = [self._face_state(t.track_id, t.label, t.confidence, t.box, t.t_start, t.t_end, t.reading,
                                  t.uncertain_reason, t.last_seen - t.first_seen)
                 for t in tracks if t.label is not None]
        if not any(f.track_id == window.track_id for f in faces):  # its track ended meanwhile: still describe it
            faces.append(self._face_state(window.track_id, label, confidence, window.box, window.t_start,
                                          window.t_end, window.reading, reason, 0.0))
        return describe_scene(faces, width or 1, self.templates)

    @staticmethod
    def _face_state(track_id: int, label: str, confidence: float, box, t_start: float, t_end: float,
                    reading: FaceReading | None, label_reason: UncertainReason | None, age_s: float) -> FaceState:
        """A face as the prompt sees it: uncertain when its latest reading or its label says so."""
        uncertain = label_reason is not None or (reading is not None and reading.uncertain_reason is not None)
        return FaceState(track_id, label, confidence, box, t_start, t_end, back_after(reading, age_s),
                         reading and reading.looking, uncertain)
