"""Training and evaluation: synthetic set -> train (tiny) -> evaluate -> export, resume, DDP with gloo, recipes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.metrics import confusion_matrix, mean_over_folds, summarise, uar_war  # noqa: E402
from models.recipes import load_recipe, lr_factor  # noqa: E402

ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def dfew(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "dfew"
    subprocess.run([sys.executable, "-m", "models.data.synthetic", str(root), "--dataset", "dfew"], check=True,
                   env=ENV, capture_output=True)
    return root


def train(args, timeout=600):
    return subprocess.run([sys.executable, "-m", "models.train", *map(str, args), "--workers", "0", "--no-progress"],
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def test_synthetic_train_evaluate_export_end_to_end(dfew, tmp_path):
    run = tmp_path / "run"
    result = train(["--model", "duse", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data", dfew,
                    "--out", run, "--epochs", "1", "--batch-size", "4"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"last.pt", "best.pt", "metrics.jsonl", "recipe.json", "tb"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "recipe.json").read_text())["optimizer"] == "adam"  # DuSE's recipe
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and 0 <= record["uar"] <= 1 and np.isfinite(record["loss"])
    evaluated = subprocess.run([sys.executable, "-m", "models.evaluate", str(run / "best.pt"), "--dataset", "dfew",
                                "--fold", "1", "--data", str(dfew), "--out", str(tmp_path / "fold1.json")],
                               env=ENV, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads((tmp_path / "fold1.json").read_text())
    assert set(results["recall"]) == {"happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"}
    assert (tmp_path / "fold1.png").read_bytes()[:4] == b"\x89PNG"
    exported = subprocess.run([sys.executable, "-m", "export", str(run / "best.pt"), "--out", str(tmp_path / "b")],
                              env=ENV, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    bundle = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert bundle["method"] == "duse" and bundle["trained_on"]["dataset"] == "dfew" and bundle["trained_on"]["fold"] == 1


def test_ous_trains_and_evaluates_with_scene_windows(dfew, tmp_path):
    run = tmp_path / "ous"
    result = train(["--model", "ous", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data", dfew,
                    "--out", run, "--epochs", "1", "--batch-size", "2", "--max-steps", "2", "--image-size", "32"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "recipe.json").read_text())["factory"]["image_size"] == 32  # a cheaper input size
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and np.isfinite(record["loss"]) and 0 <= record["uar"] <= 1
    evaluated = subprocess.run([sys.executable, "-m", "models.evaluate", str(run / "best.pt"), "--dataset", "dfew",
                                "--fold", "1", "--data", str(dfew), "--out", str(tmp_path / "ous.json")],
                               env=ENV, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads((tmp_path / "ous.json").read_text())
    assert results["model"] == "ous" and results["samples"] == 3  # fold 1 tests clips 0, 5 and 10 of 14


def test_resume_continues_where_it_stopped(dfew, tmp_path):
    run = tmp_path / "run"
    common = ["--model", "baseline", "--dataset", "dfew", "--fold", "2", "--data", dfew, "--out", run,
              "--batch-size", "4"]
    assert train(common + ["--epochs", "1"]).returncode == 0
    result = train(common + ["--epochs", "2", "--resume"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed" in result.stderr
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_two_processes_with_gloo(dfew, tmp_path):
    run = tmp_path / "ddp"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                             "--master-port", "29517", "-m", "models.train", "--model", "baseline", "--dataset",
                             "dfew", "--fold", "1", "--data", str(dfew), "--out", str(run), "--epochs", "1",
                             "--batch-size", "4", "--workers", "0", "--no-progress", "--device", "cpu"],
                            env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "recipe.json").read_text())["world"] == 2
    assert (run / "last.pt").exists() and len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_bad_arguments_are_clear(dfew, tmp_path):
    missing_fold = train(["--model", "duse", "--dataset", "dfew", "--data", dfew, "--out", tmp_path / "r"])
    assert missing_fold.returncode == 2 and "--fold" in missing_fold.stderr
    no_data = train(["--model", "duse", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data",
                     tmp_path / "nowhere", "--out", tmp_path / "r"])
    assert no_data.returncode == 2 and "nowhere" in no_data.stderr and "Traceback" not in no_data.stderr


def test_recipes_and_schedules():
    recipe = load_recipe("pe_clip", "ferv39k", {"epochs": 4})
    assert recipe["epochs"] == 4 and recipe["optimizer"] == "adamw"
    cosine = {"lr": 1.0, "epochs": 10, "schedule": "cosine", "warmup_epochs": 1, "min_lr": 0.01}
    factors = [lr_factor(step, 10, cosine) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # linear warm-up over epoch 1
    assert factors[-1] == pytest.approx(0.01, abs=0.01) and all(a >= b for a, b in zip(factors[10:], factors[11:]))
    steps = {"lr": 1.0, "epochs": 50, "schedule": "multistep", "milestones": [30, 40], "gamma": 0.1}
    assert [lr_factor(e * 10, 10, steps) for e in (0, 29, 30, 40)] == pytest.approx([1, 1, 0.1, 0.01])
    with pytest.raises(ValueError, match="no training recipe"):
        load_recipe("nonsense", "dfew")


def test_uar_war_and_fold_means():
    targets = np.array([0, 0, 0, 0, 1, 2])
    predictions = np.array([0, 0, 0, 1, 1, 0])
    matrix = confusion_matrix(targets, predictions, 3)
    uar, war = uar_war(matrix)
    assert war == pytest.approx(4 / 6) and uar == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    fold = summarise(targets, predictions, ["a", "b", "c"])
    assert fold["recall"] == {"a": 0.75, "b": 1.0, "c": 0.0}
    mean = mean_over_folds([fold | {"fold": 1}, fold | {"fold": 2, "uar": 0.5, "war": 0.5}])
    assert mean["uar"] == pytest.approx((uar + 0.5) / 2) and mean["folds"] == [1, 2]
