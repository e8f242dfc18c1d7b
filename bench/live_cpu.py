"""What the live service costs a robot's CPU: one source (the bundled sample clip looped at its own 25 fps, 640x480;
and the same clip scaled to 1280x720) through LiveRuntime for 30 s, measured as process CPU time (user + system,
all threads) over wall time, i.e. the share of one core. Per thread from /proc: capture (reading, decoding, BGR
conversion of sampled frames), decoder (FFmpeg's own decoding threads, when decode_threads is not 1), faces (detect,
track, crop, windows; its CPU split between detect, track and crop by their wall time), inference (model,
smoothing, events and the bus) and other (the rest: ONNX Runtime's pools, the watchdog, the main thread, and
threads that ended meanwhile, such as FFmpeg's of a file source that reopened to loop). Rows: the defaults, the
settings before issue 24 (BEFORE) and, at 1280x720, the smallest face found against cost. Then the whole service
(`python -m service serve`, HTTP server, no browser view) on the 640x480 stream without and with one websocket
client reading every event, measured from /proc/<pid>/stat. Also idle: the runtime with no source delivering
frames."""

from __future__ import annotations

import asyncio
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
# Issue 24's starting point: a window every 8 sampled frames, the whole frame searched every time, faces of
# min_face (40 px) at any resolution, FFmpeg's decoding threads.
BEFORE = {"hop": 8, "detect_every": 1, "detect_every_empty": 1, "hold_shift": 0.0, "min_face_fraction": 0.0,
          "decode_threads": 0}
# The smallest face found against cost at 1280x720, beside the defaults' 60 px (min_face_fraction 1/12).
SMALLEST_FACES = {"40 px (min_face 40, min_face_fraction 0)": {"min_face": 40, "min_face_fraction": 0.0},
                  "96 px (min_face 96)": {"min_face": 96}}
ROLES = ("capture", "faces", "inference")


def _role(thread_name: str | None, comm: str) -> str:
    if thread_name is not None and thread_name.split("-")[0] in ROLES:
        return thread_name.split("-")[0]
    return "decoder" if comm.startswith("av:") else "other"  # FFmpeg names its frame threads av:<codec>:df<n>


def thread_cpu(pid: int | str = "self") -> tuple[dict[int, tuple[str, float]], float]:
    """(thread id -> (role, CPU seconds so far)) for every thread of a process (this one: Python's thread names
    too), and the process's CPU seconds."""
    names = {t.native_id: t.name for t in threading.enumerate()} if pid == "self" else {}
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        threads[int(tid)] = (_role(names.get(int(tid)), comm), (int(fields[11]) + int(fields[12])) / TICK)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return threads, (int(fields[11]) + int(fields[12])) / TICK


def cpu_shares(before, after, wall: float) -> dict[str, float]:
    """Percent of one core per role between two thread_cpu() readings; "other" is the process's rest (ONNX Runtime's
    pools, the watchdog, threads that ended)."""
    roles: dict[str, float] = defaultdict(float)
    for tid, (role, seconds) in after[0].items():
        roles[role] += seconds - before[0].get(tid, (role, 0.0))[1]
    roles["process"] = after[1] - before[1]
    roles["other"] = roles["process"] - sum(v for k, v in roles.items() if k not in ("process", "other"))
    return {role: round(100 * seconds / wall, 2) for role, seconds in roles.items()}


def _delta(before: dict, after: dict, stage: str, key: str = "seconds") -> float:
    """A stage's seconds (or calls) between two StageTimer.summary()s."""
    return after.get(stage, {}).get(key, 0) - before.get(stage, {}).get(key, 0)


def stage_split(thread_share: float, before: dict, after: dict, stages: tuple[str, ...]) -> dict[str, float]:
    """A thread's CPU share split in proportion to its stages' wall time between two StageTimer.summary()s (the
    little the stages do not cover, such as queueing windows, goes to them pro rata)."""
    spent = {name: _delta(before, after, name) for name in stages}
    return {name: round(thread_share * seconds / max(sum(spent.values()), 1e-9), 2) for name, seconds in spent.items()}


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
        (runner,) = runtime.runners.values()
        before, wall = thread_cpu(), time.monotonic()
        status_before = runtime.snapshot()
        stages_before, infer_before = runner.timer.summary(), runtime.inference.timer.summary()
        time.sleep(seconds)
        after, wall = thread_cpu(), time.monotonic() - wall
        status = runtime.snapshot()
        stages, infer = runner.timer.summary(), runtime.inference.timer.summary()
        search = runner.worker.pipeline.search  # its counts since the start
    finally:
        runtime.stop()
    src, src_before = next(iter(status.sources.values())), next(iter(status_before.sources.values()))
    shares = cpu_shares(before, after, wall)
    sampled = src.frames_sampled - src_before.frames_sampled
    return {"source": source.name, "settings": {k: v for k, v in settings.model_dump().items()
                                                if k in BEFORE or k == "min_face"},
            "wall_s": round(wall, 1), "cpu_percent_of_one_core": shares,
            "faces_by_stage": stage_split(shares.get("faces", 0.0), stages_before, stages,
                                          ("detect", "track", "read", "crop")),
            "detect_ms_per_sampled_frame": round(1000 * _delta(stages_before, stages, "detect") / max(sampled, 1), 2),
            "whole_frame_share": round(search.counts.whole / max(search.calls, 1), 3),
            "infer_ms_per_call": round(1000 * _delta(infer_before, infer, "infer")
                                       / max(_delta(infer_before, infer, "infer", "calls"), 1), 2),
            "frames_read": src.frames_read - src_before.frames_read, "frames_sampled": sampled,
            "windows": status.windows_classified - status_before.windows_classified,
            "events": status.events_published - status_before.events_published,
            "load_average": round(os.getloadavg()[0], 2)}


def measure_service(source: Path, websocket: bool, seconds: float = SECONDS, warm_up_s: float = 10.0) -> dict:
    """`python -m service serve` on `source` (defaults, no browser view): process CPU over `seconds`, with or without
    one websocket client of /v1/stream reading every message meanwhile."""
    import websockets

    from bench.service_process import ServiceProcess

    with tempfile.TemporaryDirectory() as tmp:
        service = ServiceProcess(Path(tmp) / "service.log", ["--source", str(source)], view="false")
        received = 0

        async def read_for(duration: float) -> None:
            nonlocal received
            url = service.base.replace("http://", "ws://") + "/v1/stream"
            async with websockets.connect(url) as ws:
                deadline = time.monotonic() + duration
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(ws.recv(), left)
                        received += 1
                    except asyncio.TimeoutError:
                        break

        try:
            time.sleep(warm_up_s)
            pid = service.process.pid
            before, wall = thread_cpu(pid), time.monotonic()
            if websocket:
                asyncio.run(read_for(seconds))
            else:
                time.sleep(seconds)
            after, wall = thread_cpu(pid), time.monotonic() - wall
        finally:
            service.stop()
    return {"websocket": websocket, "wall_s": round(wall, 1), "process": cpu_shares(before, after, wall)["process"],
            "messages_received": received, "load_average": round(os.getloadavg()[0], 2)}


def idle_share(settings: Settings, engine) -> float:
    idle = LiveRuntime(settings, engine, ["idle=rtsp://127.0.0.1:9/none"])  # refused at once, retried with backoff
    idle.start()
    try:
        time.sleep(2.0)
        before, wall = thread_cpu(), time.monotonic()
        time.sleep(10.0)
        return cpu_shares(before, thread_cpu(), time.monotonic() - wall)["process"]
    finally:
        idle.stop()


def run(seconds: float = SECONDS) -> dict:
    settings = Settings(_env_file=None)
    engine = create_engine(settings)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        hd = scaled_clip(Path(tmp) / "sample-720p.mp4")
        rows["640x480, defaults"] = measure(SAMPLE_CLIP, settings, engine, seconds)
        rows["640x480, before"] = measure(SAMPLE_CLIP, settings.model_copy(update=BEFORE), engine, seconds)
        rows["1280x720, defaults (faces from 60 px)"] = measure(hd, settings, engine, seconds)
        rows["1280x720, before"] = measure(hd, settings.model_copy(update=BEFORE), engine, seconds)
        for name, overrides in SMALLEST_FACES.items():
            rows[f"1280x720, faces from {name}"] = measure(hd, settings.model_copy(update=overrides), engine, seconds)
    service = {"640x480, no client": measure_service(SAMPLE_CLIP, False, seconds),
               "640x480, one websocket client": measure_service(SAMPLE_CLIP, True, seconds)}
    return {"model": engine.spec.name, "detector": settings.detector, "seconds": seconds, "rows": rows,
            "service": service, "idle_cpu_percent": round(idle_share(settings, engine), 2)}


def describe(result: dict) -> str:
    lines = [f"live CPU ({result['model']}, detector {result['detector']}, {result['seconds']:.0f} s each; % of one "
             "core: process = all threads; capture = reading, converting sampled frames; decoder = FFmpeg's "
             "threads; faces = detect, track, read (landmarks, pose, descriptors), crop (split by wall time); "
             "inference = model, smoothing, events):"]
    for name, row in result["rows"].items():
        cpu, by_stage = row["cpu_percent_of_one_core"], row["faces_by_stage"]
        lines.append(f"  {name:40} process {cpu['process']:5.1f}%  capture {cpu.get('capture', 0):4.1f}  decoder "
                     f"{cpu.get('decoder', 0):4.1f}  faces {cpu.get('faces', 0):4.1f} (detect {by_stage['detect']:.1f}"
                     f" track {by_stage['track']:.1f} read {by_stage.get('read', 0):.1f} crop {by_stage['crop']:.1f})  inference "
                     f"{cpu.get('inference', 0):4.1f}  other {cpu.get('other', 0):4.1f} | detect "
                     f"{row['detect_ms_per_sampled_frame']} ms/frame, whole frame {row['whole_frame_share']:.0%} | "
                     f"read {row['frames_read']} sampled {row['frames_sampled']} windows {row['windows']} events "
                     f"{row['events']} load {row['load_average']}")
    for name, row in result["service"].items():
        lines.append(f"  service (python -m service serve), {name:30} process {row['process']:5.1f}% | messages "
                     f"{row['messages_received']} load {row['load_average']}")
    lines.append(f"  idle (a source that never opens): process {result['idle_cpu_percent']:.2f}%")
    return "\n".join(lines)
