"""Offline analysis of a recorded clip: the face loop (service.pipeline.ClipFaces: every frame decoded, sampled to
sample_fps, detect, track, crop), windows to emotion events in batches (service.emotions.EmotionStage), one
ClipReport out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from service.config import Settings
from service.detect.base import FaceDetector
from service.emotions import EmotionStage
from service.events import event_order
from service.inference import Engine, FrameFeatureCache
from service.ingest import ClipBudget
from service.metrics import StageTimer
from service.people.wiring import create_face_reader, create_registry, thread_nets
from service.pipeline import ClipFaces, FacePipeline
from service.report import ClipReport, summarise_tracks, uncertain_spans
from service.track import create_tracker

log = logging.getLogger(__name__)


def analyze_clip(path: str | Path, settings: Settings, engine: Engine, detector: FaceDetector,
                 source: str | None = None, progress: bool = False,
                 should_stop: Callable[[], bool] | None = None) -> ClipReport:
    """`should_stop` is asked before each decoded frame is used; when it says yes, decoding stops and ClipCancelled
    is raised (an upload whose client has gone)."""
    path = Path(path)
    source = source or path.name
    timer = StageTimer()
    # People are told apart within the clip (a registry of its own, gone with it).
    registry = create_registry(settings)
    reader = create_face_reader(settings, registry, nets=thread_nets(describe=registry is not None))
    faces = ClipFaces(path, FacePipeline(source, engine.spec, settings, detector, create_tracker(settings), timer,
                                         reader=reader), settings.sample_fps, settings.max_clip_seconds, should_stop,
                      ClipBudget.of(settings))
    info = faces.info
    events, pending = [], []
    # The same stage as live, so an event's label, confidence and smoothed_probs mean the same in both.
    emotions = EmotionStage(settings, engine)
    # Overlapping windows share frames: each is encoded once where the bundle allows.
    cache = FrameFeatureCache(settings.frame_cache_frames)

    def classify(windows):  # the events the track's event rate lets through
        return [e for e in emotions.classify([(source, w) for w in windows], cache, timer) if e is not None]

    bar = tqdm(total=info.frame_count, unit="frame", desc=f"analyze {path.name}", disable=not progress, leave=False)
    for _, result in faces:
        bar.update(faces.decoded - bar.n)
        events.extend(result.lifecycle)
        pending.extend(result.windows)
        if len(pending) >= settings.max_batch:
            events.extend(classify(pending))
            pending = []
    bar.close()
    result = faces.finish()
    events.extend(result.lifecycle)
    events.extend(classify(pending + result.windows))
    events.sort(key=event_order)
    if registry is not None:
        registry.forget_all()  # the clip's people are not kept past its report
    warnings = [faces.decoder.decode_error] if faces.decoder.decode_error else []
    width, height = faces.decoder.work_size  # the size boxes are given in
    if (width, height) != (info.width, info.height):
        warnings.append(f"frames of {info.width}x{info.height} were analysed scaled to {width}x{height} "
                        "(clip_work_side); boxes are in the scaled frame")
    return ClipReport(
        source=source, model=engine.spec.name, labels=engine.labels, detector=detector.name, width=width,
        height=height, source_fps=round(info.fps, 3), duration=round(faces.last_t + 1 / info.fps, 3),
        frames_decoded=faces.decoded, frames_sampled=faces.sampled, sample_fps=settings.sample_fps,
        tracks=summarise_tracks(events, engine.labels), events=events, uncertain_spans=uncertain_spans(events),
        stages=timer.summary(), warnings=warnings)
