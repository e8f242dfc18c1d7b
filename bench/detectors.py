"""What face detection costs a robot and what it finds: Haar against the embedded BlazeFace (short and full range).

All in one run, so the shared machine's drift hits every row alike:
- per detector, CPU time per sampled frame (process user+sys during detect(), so OpenCV's worker threads count)
  and faces found, through the face loop (service.pipeline) on the bundled 640x480 sample clip and on
  service.footage.people's group footage (five people from real photographs: near, tilted, turned, distant), where the true
  face boxes are known: hits per person, faces Haar finds that the detector misses, false detections;
- a face-size sweep: which face heights each BlazeFace model finds at which input size (how the input size and
  the default range were chosen);
- `hd_rows`: short, full and auto range on the sample clip and the group footage scaled up to webcam HD frames
  (1280x720, 1280x960): false faces and false tracks, hits, CPU (how range auto was designed);
- `analyze` on the sample clip, before (Haar, OpenCV's default threads: the old defaults) and after (the defaults);
- the live service on the sample clip looped (one 640x480 stream, 8 sampled fps): process CPU over `live_s`
  seconds, before and after.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from service.config import SAMPLE_CLIP, Settings
from service.crops import CropPolicy
from service.detect import create_detector
from service.detect.base import FaceDetector
from service.pipeline import ClipFaces, FacePipeline
from service.track import create_tracker

DETECTORS = {"haar": {"detector": "haar"}, "blazeface-short": {"detector": "blazeface", "blazeface_range": "short"},
             "blazeface-full": {"detector": "blazeface", "blazeface_range": "full"}}
# The defaults before the embedded BlazeFace (and before issue 24's region search).
BEFORE = {"detector": "haar", "opencv_threads": 0, "detect_every": 1, "detect_every_empty": 1, "hold_shift": 0.0}


class TimedDetector(FaceDetector):
    """A detector whose calls are timed: process CPU (all threads) and wall clock."""

    def __init__(self, inner: FaceDetector):
        self.inner, self.name = inner, inner.name
        self.cpu, self.wall, self.found = [], [], []

    def detect(self, image):
        cpu, wall = time.process_time(), time.perf_counter()
        found = self.inner.detect(image)
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)
        self.found.append(found)
        return found


def _centre_inside(box, truth) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return truth[0] <= cx <= truth[0] + truth[2] and truth[1] <= cy <= truth[1] + truth[3]


def _timed_pipeline(settings: Settings) -> tuple[FacePipeline, TimedDetector]:
    """The face loop with every call of its detector timed, searching the whole of every frame (detect_every 1:
    this compares detectors frame for frame; bench live_cpu and bench phantoms measure the region search)."""
    settings = settings.model_copy(update={"detect_every": 1, "detect_every_empty": 1})
    detector = TimedDetector(create_detector(settings))
    return FacePipeline("bench", None, settings, detector, create_tracker(settings),
                        crop=CropPolicy(64, 1, settings.face_margin)), detector


def detection_rows(group_count: int = 40, clip: Path = SAMPLE_CLIP) -> list[dict]:
    from service.footage.people import CAST, group_frames

    group = list(group_frames(group_count))
    rows, haar_hits = [], {}
    for name, overrides in DETECTORS.items():
        settings = Settings(_env_file=None, **overrides)
        pipeline, timed = _timed_pipeline(settings)
        tracked = sum(bool(r.crops) for _, r in ClipFaces(clip, pipeline, settings.sample_fps))
        sample = {"frames": len(timed.found), "cpu_ms": 1000 * statistics.mean(timed.cpu),
                  "wall_ms": 1000 * statistics.median(timed.wall), "faces": sum(map(len, timed.found)),
                  "frames_with_face": sum(bool(f) for f in timed.found), "frames_tracked": tracked}
        row = {"detector": name, "sample": sample}
        for key, min_face in (("group", settings.min_face), ("group_min_face_24", 24)):
            group_settings = settings.model_copy(update={"min_face": min_face})
            pipeline, timed = _timed_pipeline(group_settings)
            for i, (frame, _) in enumerate(group):
                pipeline.process(i / settings.sample_fps, frame)
            hits = [[any(_centre_inside(d.box, truth) for d in found) for truth in faces]
                    for found, (_, faces) in zip(timed.found, group)]
            false = sum(not any(_centre_inside(d.box, t) for t in faces)
                        for found, (_, faces) in zip(timed.found, group) for d in found)
            haar_hits.setdefault(key, hits)
            lost = sum(h and not ours for frame_h, frame_ours in zip(haar_hits[key], hits)
                       for h, ours in zip(frame_h, frame_ours))
            people = sorted(CAST, key=lambda p: p.face_height)  # group_frames lists faces in this order
            row[key] = {"min_face": min_face, "frames": len(group), "cpu_ms": 1000 * statistics.mean(timed.cpu),
                        "wall_ms": 1000 * statistics.median(timed.wall),
                        "hits_per_person": {f"{p.face_height:.0f}px{f' tilt {p.tilt:.0f}' if p.tilt else ''}"
                                            f"{' turned' if p.photo == 2 else ''}": sum(h[i] for h in hits)
                                            for i, p in enumerate(people)},
                        "false": false, "haar_hits_missed": lost}
        rows.append(row)
    return rows


HD_SIZES = {"sample": ((640, 480), (1280, 720), (1280, 960)), "group": ((640, 480), (1280, 960))}
HD_RANGES = ("short", "full", "auto")


def _clip_truth(clip: Path, sample_fps: float) -> tuple[list, list]:
    """The sample clip's sampled frames and its one true face per frame: of Haar's faces in the 640x480 frame, the
    one nearest the previous frame's (the largest in the first frame; a miss keeps the previous box). Haar finds the
    face in every sampled frame of the bundled clip, and once a false one larger than it."""
    from service.detect.haar import HaarFaceDetector
    from service.ingest import ClipDecoder, FrameSampler

    sampler, haar, frames, truth, last = FrameSampler(sample_fps), HaarFaceDetector(), [], [], None
    for frame in ClipDecoder(clip):
        if sampler.accept(frame.t):
            faces = haar.detect(frame.image)
            last = (max((f.box for f in faces), key=lambda b: b[2], default=None) if last is None else
                    min((f.box for f in faces), key=lambda b: abs(b[0] - last[0]) + abs(b[1] - last[1]), default=last))
            frames.append(frame.image)
            truth.append([last] if last else [])
    return frames, truth


def hd_rows(clip: Path = SAMPLE_CLIP, group_count: int = 40, sizes: dict = HD_SIZES,
            ranges=HD_RANGES) -> list[dict]:
    """BlazeFace short, full and auto range on larger frames (most USB webcams give 1280x720 or 1280x960): the sample
    clip and the group footage scaled up with cv2.resize (the true boxes with them), each through the face loop with
    the default tracker. Per row: CPU per sampled frame, faces whose centre lies in no true box (false) and tracks
    whose boxes do so in most of their frames (false tracks), hits per person, and hits of short range at 640x480
    that this row misses (lost)."""
    import cv2

    from service.footage.people import CAST, group_frames

    footage = {"sample": _clip_truth(clip, Settings(_env_file=None).sample_fps),
               "group": tuple(map(list, zip(*group_frames(group_count))))}
    people = [f"{p.face_height:.0f}px" for p in sorted(CAST, key=lambda p: p.face_height)]
    rows, reference = [], {}
    for source, (frames, truth) in footage.items():
        h0, w0 = frames[0].shape[:2]
        for width, height in sizes[source]:
            sx, sy = width / w0, height / h0
            scaled = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames]
            boxes = [[(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in faces] for faces in truth]
            for range_name in ranges:
                settings = Settings(_env_file=None, detector="blazeface", blazeface_range=range_name)
                pipeline, timed = _timed_pipeline(settings)
                track_frames: dict[int, list[bool]] = {}
                for i, frame in enumerate(scaled):
                    for crop in pipeline.process(i / settings.sample_fps, frame).crops:
                        track_frames.setdefault(crop.track_id, []).append(
                            any(_centre_inside(crop.box, t) for t in boxes[i]))
                hits = [[any(_centre_inside(d.box, t) for d in found) for t in faces]
                        for found, faces in zip(timed.found, boxes)]
                if (range_name, width, height) == ("short", w0, h0):
                    reference[source] = hits
                ref = reference.get(source, hits)
                rows.append({
                    "source": source, "frame": f"{width}x{height}", "range": range_name, "frames": len(scaled),
                    "cpu_ms": 1000 * statistics.mean(timed.cpu),
                    "false": sum(not any(_centre_inside(d.box, t) for t in faces)
                                 for found, faces in zip(timed.found, boxes) for d in found),
                    "false_scores": sorted({round(d.score, 2) for found, faces in zip(timed.found, boxes)
                                            for d in found if not any(_centre_inside(d.box, t) for t in faces)}),
                    "tracks": len(track_frames),
                    "false_tracks": sum(sum(v) * 2 < len(v) for v in track_frames.values()),
                    "hits_per_person": dict(zip(["face"] if source == "sample" else people,
                                                map(int, np.sum(hits, axis=0)))),
                    "lost": sum(r and not h for rf, hf in zip(ref, hits) for r, h in zip(rf, hf))})
    return rows


def describe_hd(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["BlazeFace on larger frames (face loop, default tracker): source frame | range: CPU ms per sampled frame,"
             " false faces (scores), tracks (false), hits per person of frames, short@640x480's hits lost"]
    lines += [f"  {r['source']} {r['frame']} | {r['range']}: {r['cpu_ms']:.1f} ms, {r['false']} false "
              f"{r['false_scores'][:1] + r['false_scores'][-1:] if r['false_scores'] else ''}, {r['tracks']} "
              f"tracks ({r['false_tracks']} false), {r['hits_per_person']} of {r['frames']}, {r['lost']} lost"
              for r in rows]
    return lines


def size_sweep(sizes=(24, 30, 36, 44, 52, 64, 90, 130, 200, 280), frames: int = 4) -> dict:
    """Which face sizes each model finds at which input size: one face (astronaut upright, Grace Hopper tilted 15
    degrees) of each height in 640x480 frames, `frames` frames of each; found = frames where a detection's centre
    lies in the true face box."""
    from service.detect.blazeface import BlazeFaceFaceDetector
    from service.detect.haar import HaarFaceDetector

    from service.footage.people import Person, group_frames

    sets = {h: [x for photo, tilt in ((0, 0), (1, 15)) for x in
                group_frames(frames, cast=(Person(photo, h, (320, 240), tilt),))] for h in sizes}
    detectors = {"haar": HaarFaceDetector(min_face=16)}
    for name, sides in (("short", (128, 192, 256, 320, 384)), ("full", (192, 256, 320, 384))):
        for side in sides:
            detectors[f"{name}@{side}"] = BlazeFaceFaceDetector(name, min_face=8, input_side=side)
    rows = {}
    for name, detector in detectors.items():
        cpu, calls, found = time.process_time(), 0, {}
        for h, items in sets.items():
            found[h] = sum(any(_centre_inside(d.box, faces[0]) for d in detector.detect(f)) for f, faces in items)
            calls += len(items)
        rows[name] = {"found": found, "of": 2 * frames, "cpu_ms": 1000 * (time.process_time() - cpu) / calls}
    return rows


def analyze_runs(repeats: int = 2) -> dict:
    from service.analyze import analyze_clip
    from service.inference import create_engine

    out = {}
    for label, overrides in (("before", BEFORE), ("after", {})):
        settings = Settings(_env_file=None, **overrides)
        engine, detector = create_engine(settings), create_detector(settings)
        runs = []
        for _ in range(repeats):
            cpu, wall = time.process_time(), time.perf_counter()
            report = analyze_clip(SAMPLE_CLIP, settings, engine, detector)
            runs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
        best = min(runs, key=lambda r: r["wall_s"])
        out[label] = {"detector": report.detector, "settings": overrides, **best,
                      "frames_sampled": report.frames_sampled, "tracks": len(report.tracks),
                      "labels": [t.dominant_label for t in report.tracks]}
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def live_cpu(overrides: dict, seconds: float = 25.0, warm_up: float = 10.0) -> dict:
    """The live service on the sample clip looped: share of one core over `seconds`, after `warm_up`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
    env |= {"EMOTION_SOURCES": json.dumps([str(SAMPLE_CLIP)]), "EMOTION_PORT": str(port), "EMOTION_VIEW": "false"}
    env |= {f"EMOTION_{k.upper()}": str(v) for k, v in overrides.items()}
    process = subprocess.Popen([sys.executable, "-m", "service", "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        time.sleep(warm_up)
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}")
        cpu, wall = _cpu_seconds(process.pid), time.perf_counter()
        time.sleep(seconds)
        used, elapsed = _cpu_seconds(process.pid) - cpu, time.perf_counter() - wall
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"settings": overrides, "seconds": round(elapsed, 1), "cpu_s": round(used, 2),
            "core_share": used / elapsed}


def run(live_s: float = 25.0) -> dict:
    return {"clip": SAMPLE_CLIP.name, "detection": detection_rows(), "size_sweep": size_sweep(), "hd": hd_rows(),
            "analyze": analyze_runs(),
            "live": {"before": live_cpu(BEFORE, live_s), "after": live_cpu({}, live_s)}}


def describe(result: dict) -> str:
    lines = ["detection per sampled frame (CPU = process user+sys during detect):",
             "  detector | sample clip: CPU ms, faces / frames with a face / sampled | group footage: CPU ms, "
             "hits per person, false, Haar's hits missed"]
    for row in result["detection"]:
        s = row["sample"]
        lines.append(f"  {row['detector']} | {s['cpu_ms']:.1f} ms, {s['faces']} / {s['frames_with_face']} / "
                     f"{s['frames']}")
        for key in ("group", "group_min_face_24"):
            g = row[key]
            lines.append(f"      group footage, min_face {g['min_face']} | {g['cpu_ms']:.1f} ms, {g['hits_per_person']}"
                         f" of {g['frames']}, {g['false']} false, {g['haar_hits_missed']} of Haar's hits missed")
    if result.get("size_sweep"):
        sizes = list(next(iter(result["size_sweep"].values()))["found"])
        lines.append(f"face-size sweep (frames found of each size, face px {sizes}):")
        lines += [f"  {name}: {list(row['found'].values())} of {row['of']}, {row['cpu_ms']:.1f} ms"
                  for name, row in result["size_sweep"].items()]
    lines += describe_hd(result.get("hd", []))
    for label, a in result["analyze"].items():
        lines.append(f"analyze {result['clip']} {label} ({a['detector']}): wall {a['wall_s']:.2f} s, CPU "
                     f"{a['cpu_s']:.2f} s, {a['tracks']} track(s) {a['labels']}")
    for label, live in result["live"].items():
        lines.append(f"live service, one 640x480 stream at 8 fps, {label}: {100 * live['core_share']:.0f}% of one "
                     f"core ({live['cpu_s']} s CPU in {live['seconds']} s)")
    return "\n".join(lines)
