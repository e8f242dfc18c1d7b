"""`analyze` against the fer package on the same clip, in the same run (issue 32's goal: at least 9x faster).

    python -m bench versus_fer        (needs `make fer-venv`: fer 25.10.3 and TensorFlow CPU in .cache/fer-venv)

Ours: `service.analyze.analyze_clip` with the defaults (the embedded default model, BlazeFace, the people stage with
recognition on), the engine and detector made once before the timing. fer: bench/fer_reference.py in fer's own
environment, `Video(clip).analyze(FER())` as fer documents it (every frame), and with fer's `frequency` at our
sampling rate (the clip's fps / sample_fps), so that both read about as many frames. Best of 3 each, one after the
other on the same machine; the ratio is fer's time over ours.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from service.config import SAMPLE_CLIP, Settings

ROOT = Path(__file__).resolve().parent.parent
FER_PYTHON = ROOT / ".cache" / "fer-venv" / "bin" / "python"
GOAL = 9.0


def fer_times(clip: Path, repeats: int, frequency: int | None = None) -> dict:
    if not FER_PYTHON.exists():
        raise SystemExit(f"{FER_PYTHON} not found: `make fer-venv` installs fer 25.10.3 with TensorFlow CPU there")
    command = [str(FER_PYTHON), str(ROOT / "bench" / "fer_reference.py"), str(clip), "--repeats", str(repeats)]
    if frequency:
        command += ["--frequency", str(frequency)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise SystemExit(f"fer's run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours(clip: Path, settings: Settings, repeats: int) -> dict:
    from service.analyze import analyze_clip
    from service.detect import create_detector
    from service.inference import create_engine

    engine, detector = create_engine(settings), create_detector(settings)
    times, report = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        report = analyze_clip(clip, settings, engine, detector)
        times.append(time.perf_counter() - start)
    return {"model": report.model, "best_s": round(min(times), 3), "times_s": [round(t, 3) for t in times],
            "sample_fps": settings.sample_fps, "frames_analysed": report.frames_sampled,
            "person_recognition": settings.person_recognition}


def run(repeats: int = 3) -> dict:
    import cv2

    settings = Settings(_env_file=None)
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    at_our_rate = max(1, round(fps / settings.sample_fps))
    result = {"clip": SAMPLE_CLIP.name, "clip_fps": fps, "ours": ours(SAMPLE_CLIP, settings, repeats),
              "fer_every_frame": fer_times(SAMPLE_CLIP, repeats),
              "fer_at_our_rate": fer_times(SAMPLE_CLIP, repeats, at_our_rate)}
    for name in ("fer_every_frame", "fer_at_our_rate"):
        result[f"ratio_{name}"] = round(result[name]["best_s"] / result["ours"]["best_s"], 2)
    result["goal"] = f"fer's own way (every frame) at least {GOAL:g}x our time"
    result["goal_met"] = result["ratio_fer_every_frame"] >= GOAL
    return result


def describe(result: dict) -> str:
    o, every, rate = result["ours"], result["fer_every_frame"], result["fer_at_our_rate"]
    return (f"{result['clip']} ({result['clip_fps']:g} fps), best of {len(o['times_s'])}:\n"
            f"  analyze ({o['model']}, {o['frames_analysed']} frames at {o['sample_fps']:g} fps, people stage on): "
            f"{o['best_s']} s\n"
            f"  fer {every['fer']} every frame ({every['frames_analysed']} frames): {every['best_s']} s = "
            f"{result['ratio_fer_every_frame']}x ours (goal {GOAL:g}x: {'met' if result['goal_met'] else 'NOT met'})\n"
            f"  fer with frequency={rate['frequency']} ({rate['frames_analysed']} frames): {rate['best_s']} s = "
            f"{result['ratio_fer_at_our_rate']}x ours")
