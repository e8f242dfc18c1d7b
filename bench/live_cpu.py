"""What the live service costs a robot's CPU: one source (the bundled sample clip looped at its own 25 fps, 640x480;
and the same clip scaled to 1280x720) through LiveRuntime with default settings for 30 s, measured as process CPU
time (user + system, all threads) over wall time, i.e. the share of one core. Per thread from /proc: capture
(decoding), the face worker (detect, track, crop, windows), inference (model, smoothing, events and the bus) and the
rest (ONNX Runtime's pools, the watchdog). No HTTP server or websocket client runs here. Also idle: the runtime with
no source delivering frames."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2

from service.config import SAMPLE_CLIP, Settings
from service.inference import create_engine
from service.ingest import ClipDecoder
from service.live.runtime import LiveRuntime

TICK = os.sysconf("SC_CLK_TCK")
SECONDS, WARM_UP_S = 30.0, 5.0


def thread_cpu() -> tuple[dict[int, tuple[str, float]], float]:
    """(thread id -> (role, CPU seconds so far)) for every thread of the process, and the process's CPU seconds."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        role = names.get(int(tid), "other").split("-")[0]
        threads[int(tid)] = (role if role in ("capture", "faces", "inference") else "other",
                             (int(fields[11]) + int(fields[12])) / TICK)
    times = os.times()
    return threads, times.user + times.system


def cpu_shares(before, after, wall: float) -> dict[str, float]:
    """Percent of one core per role between two thread_cpu() readings; "other" is the process's rest (ONNX Runtime's
    pools, the watchdog, threads that ended)."""
    roles: dict[str, float] = defaultdict(float)
    for tid, (role, seconds) in after[0].items():
        roles[role] += seconds - before[0].get(tid, (role, 0.0))[1]
    roles["process"] = after[1] - before[1]
    roles["other"] = roles["process"] - sum(v for k, v in roles.items() if k not in ("process", "other"))
    return {role: round(100 * seconds / wall, 2) for role, seconds in roles.items()}


def scaled_clip(path: Path, size=(1280, 720)) -> Path:
    """The sample clip scaled up to `size`, at its own frame rate (a 720p robot camera)."""
    from tests.clips import write_clip

    frames = (cv2.resize(f.image, size, interpolation=cv2.INTER_LINEAR) for f in ClipDecoder(SAMPLE_CLIP))
    return write_clip(path, frames)


def measure(source: Path, settings: Settings, engine, seconds: float = SECONDS, warm_up_s: float = WARM_UP_S) -> dict:
    runtime = LiveRuntime(settings, engine, [str(source)])
    runtime.start()
    try:
        time.sleep(warm_up_s)  # the first window, ONNX Runtime's first calls
        before, wall = thread_cpu(), time.monotonic()
        status_before = runtime.snapshot()
        time.sleep(seconds)
        after, wall = thread_cpu(), time.monotonic() - wall
        status = runtime.snapshot()
    finally:
        runtime.stop()
    src = next(iter(status.sources.values()))
    shares = cpu_shares(before, after, wall)
    return {"source": source.name, "wall_s": round(wall, 1), "cpu_percent_of_one_core": shares,
            "frames_read": src.frames_read - next(iter(status_before.sources.values())).frames_read,
            "frames_sampled": src.frames_sampled - next(iter(status_before.sources.values())).frames_sampled,
            "windows": status.windows_classified - status_before.windows_classified,
            "events": status.events_published - status_before.events_published,
            "load_average": round(os.getloadavg()[0], 2)}


def run(seconds: float = SECONDS) -> dict:
    settings = Settings(_env_file=None)
    engine = create_engine(settings)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows["640x480 sample clip"] = measure(SAMPLE_CLIP, settings, engine, seconds)
        rows["640x480, hop 8 (before)"] = measure(SAMPLE_CLIP, settings.model_copy(update={"hop": 8}), engine, seconds)
        rows["640x480, min_face 64"] = measure(SAMPLE_CLIP, settings.model_copy(update={"min_face": 64}), engine,
                                               seconds)
        rows["1280x720 (scaled)"] = measure(scaled_clip(Path(tmp) / "sample-720p.mp4"), settings, engine, seconds)
        rows["1280x720, min_face 64"] = measure(Path(tmp) / "sample-720p.mp4",
                                                settings.model_copy(update={"min_face": 64}), engine, seconds)
    idle = LiveRuntime(settings, engine, ["idle=rtsp://127.0.0.1:9/none"])  # refused at once, retried with backoff
    idle.start()
    try:
        time.sleep(2.0)
        before, wall = thread_cpu(), time.monotonic()
        time.sleep(10.0)
        idle_share = cpu_shares(before, thread_cpu(), time.monotonic() - wall)["process"]
    finally:
        idle.stop()
    return {"model": engine.spec.name, "detector": settings.detector, "seconds": seconds, "rows": rows,
            "idle_cpu_percent": round(idle_share, 2)}


def describe(result: dict) -> str:
    lines = [f"live CPU ({result['model']}, detector {result['detector']}, {result['seconds']:.0f} s each; % of one "
             "core: process = all threads; capture = decoding; faces = detect, track, crop; inference = model, "
             "smoothing, events):"]
    for name, row in result["rows"].items():
        cpu = row["cpu_percent_of_one_core"]
        lines.append(f"  {name:24} process {cpu['process']:5.1f}%  capture {cpu.get('capture', 0):4.1f}  faces "
                     f"{cpu.get('faces', 0):4.1f}  inference {cpu.get('inference', 0):4.1f}  other "
                     f"{cpu.get('other', 0):4.1f}  | read {row['frames_read']} sampled "
                     f"{row['frames_sampled']} windows {row['windows']} events {row['events']} load "
                     f"{row['load_average']}")
    lines.append(f"  idle (a source that never opens): process {result['idle_cpu_percent']:.2f}%")
    return "\n".join(lines)
