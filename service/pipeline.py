"""The per-source perception chain after ingest: detect -> track -> crop -> window buffers (windows -> emotion events
is service/emotions.py). One `FacePipeline` per source; live streams and clips both drive it frame by frame.

This is the one face loop: the live face worker feeds it sampled camera frames; `ClipFaces` feeds it a recorded
clip (decode, sample) for `analyze`, models.prepare (training crops), export's real-face windows and the
benchmarks, so all of them find, follow and crop faces the same way."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from service.bundle import BundleSpec
from service.config import Settings
from service.crops import CropPolicy, crop_scene, declared_crop
from service.detect.base import FaceDetector, as_bgr
from service.detect.regions import RegionSearch, SearchCounts
from service.errors import ClipCancelled, ClipError
from service.events import FaceReading, TrackEvent
from service.ingest import ClipBudget, ClipDecoder, Frame, FrameSampler
from service.metrics import StageTimer
from service.people.reader import FaceReader
from service.track.base import FaceTracker
from service.windows import Window, WindowBuffers


@dataclass(frozen=True)
class FaceCrop:
    track_id: int
    box: tuple[float, float, float, float]
    crop: np.ndarray  # as the crop policy makes it


@dataclass
class FrameResult:
    lifecycle: list[TrackEvent] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    faces: int = 0
    crops: list[FaceCrop] = field(default_factory=list)  # this frame's tracked faces, cropped


# A per-frame model's window is the mean of its frames: 4 of them (0.5 s at 8 fps) turn within ~0.25 s of a change
# yet average out one odd frame (bench responsiveness measures the lag and flicker this gives).
PER_FRAME_SPAN = 4


def window_span(spec: BundleSpec, configured: int | None) -> int:
    """Sampled frames a window looks at: the configured span, else PER_FRAME_SPAN for a bundle that classifies each
    frame alone (method baseline) and the whole window for video models; never more than num_frames."""
    span = configured or (PER_FRAME_SPAN if spec.method == "baseline" else spec.num_frames)
    return min(span, spec.num_frames)


def crop_policy(spec: BundleSpec, settings: Settings) -> CropPolicy:
    """The crops a bundle's model takes: as its bundle.json declares them, else (older bundles) the service's
    face_margin without alignment."""
    return declared_crop(spec.crop, spec.image_size, spec.channels, settings.face_margin)


class FacePipeline:
    """Detects, tracks and crops faces of one source and fills their window buffers. Without a bundle spec (e.g.
    models.prepare) it only crops, by the `crop` policy given, and makes no windows."""

    def __init__(self, source: str, spec: BundleSpec | None, settings: Settings, detector: FaceDetector,
                 tracker: FaceTracker, timer: StageTimer | None = None, crop: CropPolicy | None = None,
                 track_ids: Iterator[int] | None = None, search_counts: SearchCounts | None = None,
                 frame_ids: Iterator[int] | None = None, reader: FaceReader | None = None):
        """`track_ids`: where the ids that events carry come from (default 1, 2, ...); `frame_ids` the same for the
        numbers of its frames, by which the engine's frame cache knows a crop it has encoded (a scene crop is keyed
        by source and frame alone). A live source passes one counter of each to every pipeline it ever has, so a
        restarted face worker never reuses the id of a person or a frame seen before; and one `search_counts` (the
        detector's searches by kind). `reader`: who each confirmed face is and how well it reads (person_id, head
        pose, quality in its events; service/people/reader.py); None: not read (crops only)."""
        if spec is None and crop is None:
            raise ValueError("a FacePipeline without a bundle spec needs a crop policy")
        self.source, self.spec, self.settings = source, spec, settings
        self.detector, self.tracker = detector, tracker
        self.search = RegionSearch(detector, settings.detect_every, settings.region_scale, settings.min_face,
                                   settings.detect_every_empty, settings.hold_shift, search_counts)
        self._previous_faces: list[tuple[float, float, float, float]] = []  # every detection of the frame before
        self._track_ids = track_ids if track_ids is not None else itertools.count(1)
        self._public_ids: dict[int, int] = {}  # the tracker's id -> the id in events, windows and state
        self.timer = timer or StageTimer()
        self.crop = crop or crop_policy(spec, settings)
        self.buffers = (WindowBuffers(spec.num_frames, settings.hop, window_span(spec, settings.window_span))
                        if spec is not None else None)
        self._last_seen: dict[int, tuple[float, tuple[float, float, float, float]]] = {}
        self.last_faces: list = []  # the tracked faces of the latest frame (for the live state)
        self.reader = reader
        self.readings: dict[int, FaceReading] = {}  # each live track's latest reading
        self._frame_ids = frame_ids if frame_ids is not None else itertools.count()
        # A track shorter than this never gets a stretched window at its end (too little to judge).
        self.min_partial_frames = max(2, spec.num_frames // 2) if spec is not None else 0

    def process(self, t: float, image: np.ndarray) -> FrameResult:
        result = FrameResult()
        frame_id = next(self._frame_ids)
        image = as_bgr(image)  # grey and BGRA frames too
        with self.timer.time("detect"):
            # Between whole-frame passes the detector looks where faces were: the frame before's detections (new
            # candidates included) and the last box of every track (one missed a frame).
            known = self._previous_faces + [box for _, box in self._last_seen.values()]
            detections = self.search.detect(image, known)
        self._previous_faces = [d.box for d in detections]
        with self.timer.time("track"):
            update = self.tracker.update(detections, image)
        for tracker_id in update.lost:
            self._end_track(self._public_ids.pop(tracker_id), result)
        faces = [replace(face, track_id=self._public_id(face.track_id)) for face in update.faces]
        result.faces = len(faces)
        self.last_faces = faces
        if not faces:
            return result
        if self.reader is not None:
            with self.timer.time("read"):
                for face in faces:
                    self.readings[face.track_id] = self.reader.read(image, face.track_id, face.detection.box, t)
        with self.timer.time("crop"):
            scene = (crop_scene(image, self.spec.image_size, self.spec.channels)
                     if self.spec is not None and self.spec.needs_scene else None)
            for face in faces:
                box = face.detection.box
                reading = self.readings.get(face.track_id)
                if face.is_new:
                    result.lifecycle.append(TrackEvent(
                        source=self.source, type="track_new", track_id=face.track_id, t=t, box=box,
                        person_id=reading and reading.person_id, seen_before=reading and reading.seen_before,
                        absent_s=reading and reading.absent_s))
                self._last_seen[face.track_id] = (t, box)
                crop = self.crop.crop(image, box, face.detection.landmarks)
                result.crops.append(FaceCrop(face.track_id, box, crop))
                window = self.buffers.push(face.track_id, crop, t, box, scene, frame_id) if self.buffers else None
                if window is not None:
                    result.windows.append(replace(window, reading=reading))
        return result

    @property
    def has_tracks(self) -> bool:
        return bool(self._last_seen)

    def finish(self) -> FrameResult:
        """End of the source: every live track ends, short ones get their stretched window."""
        result = FrameResult()
        self._previous_faces = []
        for tracker_id in self.tracker.flush():
            self._end_track(self._public_ids.pop(tracker_id), result)
        return result

    def _public_id(self, tracker_id: int) -> int:
        if tracker_id not in self._public_ids:
            self._public_ids[tracker_id] = next(self._track_ids)
        return self._public_ids[tracker_id]

    def _end_track(self, track_id: int, result: FrameResult) -> None:
        t, box = self._last_seen.pop(track_id)
        reading = self.readings.pop(track_id, None)
        if self.reader is not None:
            self.reader.end(track_id, t)
        window = self.buffers.end(track_id, self.min_partial_frames) if self.buffers else None
        if window is not None:
            result.windows.append(replace(window, reading=reading))
        result.lifecycle.append(TrackEvent(source=self.source, type="track_lost", track_id=track_id, t=t, box=box,
                                           person_id=reading and reading.person_id))


class ClipFaces:
    """The face loop over a recorded clip: every frame decoded (nothing dropped), sampled to `sample_fps` (None:
    every frame), each sampled frame through `pipeline`. Iterating gives (Frame, FrameResult) per sampled frame; then
    `finish()` ends the tracks. Counts what it did (decoded, sampled, last_t) for the report."""

    def __init__(self, path: str | Path, pipeline: FacePipeline, sample_fps: float | None,
                 max_seconds: float | None = None, should_stop: Callable[[], bool] | None = None,
                 budget: ClipBudget | None = None):
        self.decoder = ClipDecoder(path, budget)  # a budget refuses and scales frames (service/ingest/clip.py)
        self.info = self.decoder.info
        if max_seconds is not None and self.info.duration is not None and self.info.duration > max_seconds:
            raise ClipError(f"clip is {self.info.duration:.0f} s long; the limit is {max_seconds:.0f} s "
                            "(EMOTION_MAX_CLIP_SECONDS)")
        self.pipeline, self.max_seconds, self.should_stop = pipeline, max_seconds, should_stop
        self.sampler = FrameSampler(sample_fps) if sample_fps else None
        self.decoded = self.sampled = 0
        self.last_t = 0.0

    def __iter__(self) -> Iterator[tuple[Frame, FrameResult]]:
        for frame in self.pipeline.timer.timed_iter("decode", self.decoder):
            if self.should_stop is not None and self.should_stop():
                raise ClipCancelled(f"analysis of {self.pipeline.source} cancelled after {self.decoded} frames")
            self.decoded += 1
            self.last_t = frame.t
            if self.max_seconds is not None and frame.t > self.max_seconds:
                raise ClipError(f"clip runs past {self.max_seconds:.0f} s; the limit is EMOTION_MAX_CLIP_SECONDS")
            if self.sampler is not None and not self.sampler.accept(frame.t):
                continue
            self.sampled += 1
            yield frame, self.pipeline.process(frame.t, frame.image)

    def finish(self) -> FrameResult:
        return self.pipeline.finish()

