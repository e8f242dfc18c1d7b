"""What the service currently sees: per source, its status and the tracks in view with their current labels.
Written by the workers, read by GET /v1/state (as RuntimeStatus), by the prompt formatter (which describes
everyone in view) and by the browser view."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from typing import Literal

from pydantic import BaseModel, Field

from service.events import Box, FaceQuality, FaceReading, HeadPose, UncertainReason


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
    reading: FaceReading | None = None  # the face's latest: who, pose, quality
    uncertain_reason: UncertainReason | None = None  # of the label (its window's)


@dataclass
class SourceView:
    name: str
    kind: str
    frame_width: int = 0
    frame_height: int = 0
    tracks: dict[int, TrackView] = field(default_factory=dict)


class LiveState:
    def __init__(self):
        self._lock = threading.Lock()
        self._sources: dict[str, SourceView] = {}

    def add_source(self, name: str, kind: str) -> None:
        with self._lock:
            self._sources.setdefault(name, SourceView(name, kind))

    def track_seen(self, source: str, track_id: int, box: Box, t: float, frame_width: int,
                   frame_height: int = 0, reading: FaceReading | None = None) -> None:
        with self._lock:
            view = self._sources[source]
            view.frame_width, view.frame_height = frame_width, frame_height
            track = view.tracks.get(track_id)
            if track is None:
                view.tracks[track_id] = TrackView(track_id, box, t, t, reading=reading)
            else:
                track.box, track.last_seen = box, t
                track.reading = reading or track.reading

    def track_lost(self, source: str, track_id: int) -> None:
        with self._lock:
            self._sources[source].tracks.pop(track_id, None)

    def set_emotion(self, source: str, track_id: int, label: str, confidence: float, probs: dict[str, float],
                    t_start: float, t_end: float, uncertain_reason: UncertainReason | None = None) -> None:
        with self._lock:
            track = self._sources[source].tracks.get(track_id)
            if track is not None:  # the track may have ended while its window was in inference
                track.label, track.confidence, track.probs = label, confidence, probs
                track.t_start, track.t_end = t_start, t_end
                track.uncertain_reason = uncertain_reason

    def tracks(self, source: str) -> tuple[list[TrackView], int]:
        """Copies of the tracks in view, and the frame width (for left/right wording)."""
        with self._lock:
            view = self._sources[source]
            return [TrackView(**vars(t)) for t in view.tracks.values()], view.frame_width

    def frame_size(self, source: str) -> tuple[int, int]:
        """Width and height of the source's frames where a face was last seen (0, 0 before that)."""
        with self._lock:
            view = self._sources[source]
            return view.frame_width, view.frame_height

    def sources(self) -> list[str]:
        with self._lock:
            return list(self._sources)


# ---- GET /v1/state's answer -----------------------------------------------------------------------------------------


class TrackStatus(BaseModel):
    track_id: int
    box: Box
    first_seen: float = Field(description="service clock, seconds")
    last_seen: float
    label: str | None = Field(description="current (smoothed) label; null until the track's first window")
    confidence: float | None
    probs: dict[str, float] | None = Field(description="the smoothed probabilities of the latest window")
    person_id: int | None = Field(None, description="who the face is (as in emotion events; the track id with "
                                  "person_recognition off)")
    seen_before: bool | None = Field(None, description="the person was seen before this track began")
    head_pose: HeadPose | None = Field(None, description="yaw, pitch, roll in degrees at the latest reading")
    looking: bool | None = Field(None, description="the head is turned to the camera (null: no pose)")
    quality: FaceQuality | None = Field(None, description="how well the face can be read now")
    uncertain_reason: UncertainReason | None = Field(
        None, description="why the face or its label cannot be trusted now (as in emotion events), null: it can")


def track_status(track: TrackView) -> TrackStatus:
    reading = track.reading
    return TrackStatus(
        track_id=track.track_id, box=track.box, first_seen=round(track.first_seen, 3),
        last_seen=round(track.last_seen, 3), label=track.label, confidence=track.confidence, probs=track.probs,
        person_id=reading and reading.person_id, seen_before=reading and reading.seen_before,
        head_pose=reading and reading.head_pose, looking=reading and reading.looking,
        quality=reading and reading.quality,
        uncertain_reason=(reading and reading.uncertain_reason) or track.uncertain_reason)


class SourceStatus(BaseModel):
    kind: str = Field(description="camera, stream, file or ros")
    uri: str
    status: str = Field(description="starting, open (frames arrive and are used), waiting (the source is there but "
                        "gave no usable frame for capture_timeout_ms: a ROS topic without publisher, silent, or "
                        "sending only messages that are skipped), reconnecting (failed; reopened after a backoff) "
                        "or stopped")
    alive: bool = Field(description="the source delivers frames (status open)")
    last_error: str | None = Field(description="why the source last failed, or why its messages were skipped while "
                                   "none was usable; null once it delivers again")
    waiting_for: str | None = Field(None, description="while waiting: what for (e.g. no publisher on the topic)")
    fps_processed: float
    frames_read: int
    frames_sampled: int
    frames_dropped: int = Field(description="sampled frames dropped because the face worker lagged")
    frames_skipped: int = Field(0, description="frames or messages that arrived and could not be used, skipped "
                                "(the sum of `skipped`)")
    skipped: dict[str, int] = Field(default_factory=dict, description="frames skipped by reason: malformed (no "
                                    "message of the topic's type), broken (pixels that do not add up), undecodable, "
                                    "unsupported (an encoding or format the service cannot convert), refused_size "
                                    "(over max_frame_side, max_frame_pixels or max_frame_aspect)")
    last_skipped: str | None = Field(None, description="why the latest skipped frame was skipped (what it quotes of "
                                     "the message is escaped and shortened)")
    worker_errors: dict[str, int] = Field(default_factory=dict, description="frames the source's face worker "
                                          "failed on, by error type (each type logged at most once a minute)")
    queue_depth: int
    reconnects: int
    frame_width: int
    tracks: list[TrackStatus]
    label_changes: int = Field(0, description="times a track's published label changed")
    detector_searches: dict[str, int] = Field(default_factory=dict, description="face detector searches since the "
                                              "start by kind: whole (the whole frame), region (around one known "
                                              "face), held (a still face's frame not searched)")


class EngineStatus(BaseModel):
    """Where windows are classified now (`engine` setting; service/inference/failover.py)."""

    where: str = Field(description="where windows run now: 'local', or the remote model's URL (each emotion event's "
                       "`engine` says the same of its own window)")
    status: Literal["local", "remote", "fallback"] = Field(
        description="local: no remote engine configured; remote: windows run on the server; fallback: the server is "
                    "away (down, past the deadline, or its contract differs) and windows run on the local fallback "
                    "while health checks wait for it")
    model: str = Field(description="the model windows run on now")
    remote: str | None = Field(None, description="the configured remote URL (triton://HOST:PORT/MODEL); null: none")
    last_error: str | None = Field(None, description="why the remote last failed; null once it answers again")
    fallback_model: str | None = Field(None, description="the local fallback's model")
    switches: int = Field(0, description="times windows moved between the server and the local fallback")
    windows_remote: int = Field(0, description="windows the server classified")
    windows_local: int = Field(0, description="windows the local engine classified")
    remote_bytes_sent: int = Field(0, description="tensor bytes sent to the server (pixels of frames not encoded "
                                   "before, frame features for the window head)")
    remote_bytes_received: int = Field(0, description="tensor bytes received from the server")
    bytes_per_window: float | None = Field(None, description="tensor bytes sent and received per window the server "
                                           "classified")
    health_checks: int = Field(0, description="health checks of the server while windows ran locally")
    next_check_s: float | None = Field(None, description="seconds until the next health check; null when none is "
                                       "due")


class RuntimeStatus(BaseModel):
    t: float | None = Field(description="service clock, seconds; null without live sources")
    model: str
    engine: EngineStatus | None = Field(None, description="where windows are classified now (set by GET /v1/state)")
    sources: dict[str, SourceStatus] = Field(default_factory=dict)
    windows_queue_depth: int = 0
    windows_dropped: int = 0
    windows_classified: int = 0
    inference_errors: dict[str, int] = Field(default_factory=dict, description="batches the inference worker "
                                             "failed on, by error type")
    events_published: int = 0
    subscribers: int = 0
    events_dropped_slow_clients: int = 0
    watchdog_restarts: dict[str, int] = Field(default_factory=dict)
