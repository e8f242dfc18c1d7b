"""Per-track window buffers: a ring of num_frames crops that emits a window every `hop` frames. A `span` shorter
than num_frames makes each window look at only the newest `span` crops (spread over the model's num_frames slots),
so a per-frame model's window follows a change of expression sooner."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from service.events import FaceReading


@dataclass(frozen=True)
class Window:
    track_id: int
    faces: np.ndarray  # [T, H, W, C] uint8
    scene: np.ndarray | None  # [T, H, W, C] uint8 for scene-aware models
    t_start: float
    t_end: float
    box: tuple[float, float, float, float]  # the face box in the window's last frame
    frame_ids: tuple[int, ...] = ()  # which source frames the crops come from (a frame repeats in a stretched window)
    reading: FaceReading | None = None  # who the face is and how well it reads, at the window's last frame


@dataclass(frozen=True)
class _Entry:
    face: np.ndarray
    scene: np.ndarray | None
    t: float
    box: tuple[float, float, float, float]
    frame_id: int


class WindowBuffer:
    """Holds the newest num_frames crops of one track. The first window comes when `span` crops are there (default
    num_frames: the ring is full), then one every `hop` pushes (hop < span makes windows overlap)."""

    def __init__(self, track_id: int, num_frames: int, hop: int, span: int | None = None):
        span = num_frames if span is None else span
        if num_frames < 1 or hop < 1 or not 1 <= span <= num_frames:
            raise ValueError(f"num_frames and hop must be >= 1 and span in 1..num_frames, got {num_frames}, {hop}, "
                             f"{span}")
        self.track_id, self.num_frames, self.hop, self.span = track_id, num_frames, hop, span
        self._ring: deque[_Entry] = deque(maxlen=num_frames)
        self._since_last = 0
        self._pushed = 0
        self.windows_emitted = 0

    def __len__(self) -> int:
        return len(self._ring)

    def push(self, face: np.ndarray, t: float, box: tuple[float, float, float, float],
             scene: np.ndarray | None = None, frame_id: int | None = None) -> Window | None:
        self._ring.append(_Entry(face, scene, t, box, self._pushed if frame_id is None else frame_id))
        self._pushed += 1
        self._since_last += 1
        if len(self._ring) < self.span:
            return None
        if self.windows_emitted and self._since_last < self.hop:
            return None
        self._since_last = 0
        self.windows_emitted += 1
        return self._window(self._newest())

    def final_window(self, min_frames: int) -> Window | None:
        """At the end of a track, so its last frames are not lost: a track that never filled its ring gets a window
        stretched over the frames it has (indices spread evenly, as DFER datasets sample short clips) if it has at
        least min_frames; a track with at least hop/2 frames since its last window gets one more window."""
        if not self.windows_emitted:
            if len(self._ring) < max(1, min_frames):
                return None
            picks = np.linspace(0, len(self._ring) - 1, self.num_frames).round().astype(int)
            self._since_last = 0
            self.windows_emitted += 1
            return self._window([self._ring[i] for i in picks])
        if self._since_last < max(1, self.hop // 2):
            return None
        self._since_last = 0
        self.windows_emitted += 1
        return self._window(self._newest())

    def _newest(self) -> list[_Entry] | None:
        """The newest `span` crops spread over num_frames slots (None: the whole ring, span == num_frames)."""
        if self.span == self.num_frames:
            return None
        newest = list(self._ring)[-self.span:]
        return [newest[i] for i in np.linspace(0, self.span - 1, self.num_frames).round().astype(int)]

    def _window(self, entries: list[_Entry] | None = None) -> Window:
        entries = entries or list(self._ring)
        scene = np.stack([e.scene for e in entries]) if entries[0].scene is not None else None
        return Window(self.track_id, np.stack([e.face for e in entries]), scene,
                      entries[0].t, entries[-1].t, entries[-1].box, tuple(e.frame_id for e in entries))


class WindowBuffers:
    """One WindowBuffer per live track."""

    def __init__(self, num_frames: int, hop: int, span: int | None = None):
        self.num_frames, self.hop, self.span = num_frames, hop, span
        self._buffers: dict[int, WindowBuffer] = {}

    def push(self, track_id: int, face: np.ndarray, t: float, box: tuple[float, float, float, float],
             scene: np.ndarray | None = None, frame_id: int | None = None) -> Window | None:
        buffer = self._buffers.get(track_id)
        if buffer is None:
            buffer = self._buffers[track_id] = WindowBuffer(track_id, self.num_frames, self.hop, self.span)
        return buffer.push(face, t, box, scene, frame_id)

    def end(self, track_id: int, min_frames: int) -> Window | None:
        """Forget a track, returning its final window if it has one (see WindowBuffer.final_window)."""
        buffer = self._buffers.pop(track_id, None)
        return buffer.final_window(min_frames) if buffer else None

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._buffers
