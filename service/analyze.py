"""Offline analysis of a recorded clip: every frame decoded (nothing dropped), sampled to sample_fps, through the
face pipeline, windows classified in batches, one ClipReport out."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from service.config import Settings
from service.errors import ClipError
from service.events import event_time
from service.inference import FrameFeatureCache, OnnxEngine
from service.ingest import ClipDecoder, FrameSampler
from service.metrics import StageTimer
from service.pipeline import FacePipeline, classify
from service.report import ClipReport, summarise_tracks
from service.track import create_tracker

log = logging.getLogger(__name__)


def analyze_clip(path: str | Path, settings: Settings, engine: OnnxEngine, detector, source: str | None = None,
                 progress: bool = False) -> ClipReport:
    path = Path(path)
    source = source or path.name
    timer = StageTimer()
    decoder = ClipDecoder(path)
    info = decoder.info
    if info.duration is not None and info.duration > settings.max_clip_seconds:
        raise ClipError(f"clip is {info.duration:.0f} s long; the limit is {settings.max_clip_seconds:.0f} s "
                        "(EMOTION_MAX_CLIP_SECONDS)")
    sampler = FrameSampler(settings.sample_fps)
    faces = FacePipeline(source, engine.spec, settings, detector,
                         create_tracker(settings), timer)
    events, pending = [], []
    cache = FrameFeatureCache()  # overlapping windows share frames: each is encoded once where the bundle allows
    decoded = sampled = 0
    last_t = 0.0
    bar = tqdm(total=info.frame_count, unit="frame", desc=f"analyze {path.name}", disable=not progress, leave=False)
    for frame in timer.timed_iter("decode", decoder):
        decoded += 1
        last_t = frame.t
        bar.update()
        if frame.t > settings.max_clip_seconds:
            raise ClipError(f"clip runs past {settings.max_clip_seconds:.0f} s; the limit is "
                            f"EMOTION_MAX_CLIP_SECONDS")
        if not sampler.accept(frame.t):
            continue
        sampled += 1
        result = faces.process(frame.t, frame.image)
        events.extend(result.lifecycle)
        pending.extend(result.windows)
        if len(pending) >= settings.max_batch:
            events.extend(classify(engine, pending, source, settings.max_batch, timer, settings.prompts, cache))
            pending = []
    bar.close()
    result = faces.finish()
    events.extend(result.lifecycle)
    events.extend(classify(engine, pending + result.windows, source, settings.max_batch, timer, settings.prompts,
                           cache))
    events.sort(key=event_time)
    warnings = [decoder.decode_error] if decoder.decode_error else []
    return ClipReport(
        source=source, model=engine.spec.name, labels=engine.labels, detector=detector.name, width=info.width,
        height=info.height, source_fps=round(info.fps, 3), duration=round(last_t + 1 / info.fps, 3),
        frames_decoded=decoded, frames_sampled=sampled, sample_fps=settings.sample_fps,
        tracks=summarise_tracks(events, engine.labels), events=events, stages=timer.summary(), warnings=warnings)
