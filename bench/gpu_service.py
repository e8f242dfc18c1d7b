"""The service's PyTorch backend under a live load, without the web stack: a checkpoint of random weights, the
engine that `EMOTION_BACKEND=pytorch EMOTION_TORCH_DEVICE=...` makes (service.inference.create_engine), and the
service's own window buffers, window queue and inference worker (batching, smoothing, emotion events). Crops are
fed straight into the window buffers, so detection and tracking are not measured: the figures are the backend's.

Frame-to-event latency: from the moment the last frame of a window enters its buffer to the moment its emotion
event is made."""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.stats import percentile

DRIVE = ("engine, window buffers, window queue, inference worker and the live runtime's event builder driven "
         "directly (service.windows, service.live.workers.InferenceWorker, service.emotions); no web stack, "
         "no capture, detector or tracker")


def save_random_checkpoint(method: str, backbone: str | None, path: Path) -> Path:
    from models.checkpoint import save_checkpoint
    from models.registry import create_model

    factory = {"dataset": "dfew"} | ({"backbone": backbone} if backbone else {})
    model = create_model(method, **factory)
    return save_checkpoint(path, model, name=method, factory=factory, training={"dataset": "dfew"})


@contextmanager
def environment(**values: str):
    """Settings come from the environment, as on a robot; the previous values are put back afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_service_load(checkpoint: Path, torch_device: str, faces: int = 16, fps: float = 8.0,
                     duration_s: float = 30.0) -> dict:
    from service.config import Settings
    from service.inference import create_engine
    from service.emotions import EmotionStage
    from service.ingest.queues import BoundedQueue, FullPolicy
    from service.live.ended_tracks import EndedTracks
    from service.live.workers import InferenceWorker, PendingWindow
    from service.metrics import StageTimer
    from service.state import LiveState
    from service.windows import WindowBuffers

    with environment(EMOTION_BACKEND="pytorch", EMOTION_TORCH_DEVICE=torch_device, EMOTION_CHECKPOINT=str(checkpoint)):
        settings = Settings(_env_file=None)
    started = time.perf_counter()
    engine = create_engine(settings)
    load_s = time.perf_counter() - started
    spec = engine.spec
    size, channels, frames = spec.image_size, spec.channels, spec.num_frames
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (frames * 2, size, size, channels), dtype=np.uint8)
    # First calls set up kernels per batch shape: warm up at batch 1 and max_batch, as a service start-up would.
    warm = {}
    for batch in sorted({1, settings.max_batch}):
        window = np.ascontiguousarray(np.broadcast_to(pool[:frames], (batch, frames, size, size, channels)))
        started = time.perf_counter()
        engine.predict(window, window if spec.needs_scene else None)
        warm[batch] = time.perf_counter() - started

    clock = time.monotonic
    source = "bench"
    queue: BoundedQueue[PendingWindow] = BoundedQueue(settings.window_queue, FullPolicy.DROP_OLDEST)
    buffers = WindowBuffers(frames, settings.hop)
    state = LiveState()
    state.add_source(source, "synthetic")
    latencies, event_times, batches, infer_s = [], [], [], []

    def observe(frame_to_event_s: float) -> None:
        latencies.append(frame_to_event_s)
        event_times.append(clock())

    # The live runtime's own event path: smoothing, live state, a prompt describing everyone in view, the event.
    stage = EmotionStage(settings, engine, state)
    worker = InferenceWorker(stage, queue, settings.max_batch, lambda event: None, clock,
                             EndedTracks(stage, queue, lambda event: None).settle, batches.append,
                             StageTimer(observer=lambda _, seconds: infer_s.append(seconds)), observe,
                             settings.frame_cache_frames)
    worker.start()
    period, emitted, first_window_at, last_window_at = 1.0 / fps, 0, None, None
    begin = clock()
    try:
        for tick in range(int(duration_s * fps)):
            for face in range(faces):  # faces spread evenly over each frame period, as unsynchronised cameras
                due = begin + tick * period + face * period / faces
                if (wait := due - clock()) > 0:
                    time.sleep(wait)
                crop = pool[(tick + face) % len(pool)]
                now = clock()
                box = (0.0, 0.0, float(size), float(size))
                state.track_seen(source, face, box, now, size)
                window = buffers.push(face, crop, now, box, crop if spec.needs_scene else None, tick)
                if window is not None:
                    first_window_at, last_window_at = first_window_at or now, now
                    emitted += 1
                    queue.put(PendingWindow(source, window))
        fed_until = clock()
        while worker.windows_done + queue.dropped < emitted and clock() - fed_until < 10:
            time.sleep(0.01)  # let the last windows through (at most 10 s)
        drained_at = clock()
    finally:
        worker.stop()
        worker.join(timeout=5)
    done = worker.windows_done
    # Windows come in bursts, one per face every hop frames: a rate is counted over whole hop periods.
    hop_s = settings.hop / fps
    offered_span = (last_window_at - first_window_at + hop_s) if emitted else None
    done_span = (event_times[-1] - first_window_at + hop_s) if event_times and first_window_at else None
    return {
        "drive": DRIVE, "method": spec.method, "backbone": spec.backbone, "providers": engine.providers,
        "engine_load_s": load_s, "warmup_s": warm, "faces": faces, "fps_per_face": fps, "duration_s": duration_s,
        "hop": settings.hop, "max_batch": settings.max_batch, "windows_offered": emitted, "windows_done": done,
        "windows_dropped": queue.dropped, "worker_errors": worker.errors,
        "offered_windows_per_s": emitted / offered_span if offered_span else 0.0,
        "sustained_windows_per_s": len(event_times) / done_span if done_span else 0.0,
        "drain_s": drained_at - fed_until,
        "latency_p50_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": percentile(latencies, 0.95) if latencies else None,
        "latency_max_s": max(latencies) if latencies else None,
        "inference_call_p50_s": statistics.median(infer_s) if infer_s else None,
        "batch_mean": statistics.mean(batches) if batches else None,
        "kept_up": bool(done == emitted and queue.dropped == 0 and worker.errors == 0),
    }
