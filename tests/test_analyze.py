"""`python -m service analyze` end to end, as a user runs it, on a clip made from a real photograph."""

import json
import subprocess
import sys

import pytest

from service.analyze import analyze_clip
from service.bundle import ModelBundle
from service.config import DEFAULT_BUNDLE
from service.detect import create_detector
from service.inference import OnnxEngine


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "service", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def cli_run(astronaut_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    result = run_cli("analyze", astronaut_clip, "--json", out / "report.json", "--plot", out / "plot.png")
    return result, out


def test_smiling_astronaut_comes_out_happy(cli_run):
    result, out = cli_run
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    emotions = [e for e in report["events"] if e["type"] == "emotion"]
    assert emotions and all(e["label"] == "happy" for e in emotions)
    assert [t["dominant_label"] for t in report["tracks"]] == ["happy"]
    assert "track 1" in result.stdout and "happy" in result.stdout


def test_json_events_follow_contract_2(cli_run):
    _, out = cli_run
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "expression-ensemble" and report["detector"] == "blazeface"
    assert report["frames_decoded"] == 75 and 20 <= report["frames_sampled"] <= 26  # 3 s: every frame, 8 fps kept
    types = [e["type"] for e in report["events"]]
    assert types[0] == "track_new" and types[-1] in ("track_lost", "emotion") and "track_lost" in types
    for event in report["events"]:
        if event["type"] == "emotion":
            assert {"track_id", "t_start", "t_end", "label", "confidence", "probs", "box", "model", "prompt"} <= set(event)
            assert event["t_end"] > event["t_start"] and abs(sum(event["probs"].values()) - 1) < 1e-3
            assert event["prompt"].startswith("The person in front of you has looked happy")
    assert set(report["stages"]) >= {"decode", "detect", "track", "crop", "infer"}


def test_plot_is_a_png(cli_run):
    _, out = cli_run
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("content, message", [
    (None, "clip not found"),
    (b"", "clip is empty"),
    (b"hello, I am a text file\n", "not a readable video"),
    (bytes(range(256)) * 40, "not a readable video"),
])
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("analyze", path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_missing_model_bundle_is_a_clear_error(astronaut_clip, tmp_path):
    result = run_cli("analyze", astronaut_clip, "--model", tmp_path / "no-bundle")
    assert result.returncode == 2 and "model bundle not found" in result.stderr and "Traceback" not in result.stderr


def test_clip_without_faces_exits_0_and_says_so(blank_clip):
    result = run_cli("analyze", blank_clip)
    assert result.returncode == 0 and "no faces found" in result.stdout


def test_analyze_in_process_reports_stage_timings(astronaut_clip, settings):
    engine = OnnxEngine(ModelBundle.load(DEFAULT_BUNDLE))
    report = analyze_clip(astronaut_clip, settings.model_copy(update={"hop": 4}), engine, create_detector(settings))
    assert len(report.tracks) == 1 and report.tracks[0].dominant_label == "happy"
    windows = report.tracks[0].windows
    assert windows >= 2  # a hop of 4 over ~22 frames of one face
    assert report.stages["detect"]["calls"] == report.frames_sampled


def test_too_long_clip_is_refused(astronaut_clip, settings):
    from service.errors import ClipError

    engine = OnnxEngine(ModelBundle.load(DEFAULT_BUNDLE))
    with pytest.raises(ClipError, match="limit"):
        analyze_clip(astronaut_clip, settings.model_copy(update={"max_clip_seconds": 1.0}), engine,
                     create_detector(settings))
