"""Training and evaluation: synthetic set -> train (tiny) -> evaluate -> export, resume, DDP with gloo, recipes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.metrics import confusion_matrix, mean_over_folds, summarise, uar_war  # noqa: E402

ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
ROOT = Path(__file__).resolve().parents[2]


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
    # the crop policy models.prepare records beside the face folders travels through the checkpoint into the bundle
    declared = dfew / "Clip" / "clip_224x224" / "crop.json"
    declared.write_text(json.dumps({"margin": 0.25, "align": "eyes", "size": 224, "colour": "rgb"}))
    try:
        result = train(["--model", "duse", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data", dfew,
                        "--out", run, "--epochs", "1", "--batch-size", "4", "--image-size", "64"])
    finally:
        declared.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"last.pt", "best.pt", "metrics.jsonl", "recipe.json", "tb"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "recipe.json").read_text())["optimizer"] == "adam"  # DuSE's recipe
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and 0 <= record["uar"] <= 1 and np.isfinite(record["loss"])
    assert set(record["loss_terms"]) == {"L_ce"} and record["lr"] == {"base": pytest.approx(1e-3)}
    assert "val_loss" not in record  # DuSE's protocol has no validation split
    evaluated = subprocess.run([sys.executable, "-m", "models.evaluate", str(run / "best.pt"), "--dataset", "dfew",
                                "--fold", "1", "--data", str(dfew), "--out", str(tmp_path / "fold1.json")],
                               env=ENV, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads((tmp_path / "fold1.json").read_text())
    assert set(results["recall"]) == {"happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"}
    assert (tmp_path / "fold1.png").read_bytes()[:4] == b"\x89PNG"
    # no validation split in DuSE's protocol: nothing to fit a temperature on, and evaluate says so
    assert results["temperature"] == 1.0 and results["temperature_fitted_on"] is None
    assert results["ece_before"] == results["ece_after"] and "has no temperature" in evaluated.stdout
    assert (tmp_path / "fold1.reliability.png").read_bytes()[:4] == b"\x89PNG"
    exported = subprocess.run([sys.executable, "-m", "export", str(run / "best.pt"), "--out", str(tmp_path / "b")],
                              env=ENV, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    bundle = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert bundle["method"] == "duse" and bundle["trained_on"]["dataset"] == "dfew" and bundle["trained_on"]["fold"] == 1
    assert bundle["crop"] == {"margin": 0.25, "align": "eyes", "size": 64, "colour": "rgb"}  # at the model's size


def test_ous_trains_and_evaluates_with_scene_windows(dfew, tmp_path):
    """OUS's protocol on a validation split of the fold, with a plateau that must fire: at lr 1e-8 the validation
    UAR cannot change, so every epoch after the first is one without improvement; patience 1 and factor 0.1 take
    the rate below the stop rate 1e-9 after epoch 3, and training stops there instead of running 10 epochs."""
    data = json.loads((ROOT / "models" / "configs" / "train" / "ous.json").read_text())
    data["defaults"]["plateau"] = {"monitor": "val_uar", "factor": 0.1, "patience": 1, "stop_lr": 1e-9}
    own = tmp_path / "ous.json"
    own.write_text(json.dumps(data))
    run = tmp_path / "ous"
    result = train(["--model", "ous", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data", dfew,
                    "--out", run, "--epochs", "10", "--lr", "1e-8", "--batch-size", "2", "--max-steps", "1",
                    "--image-size", "32", "--recipe", own])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stopping (plateau schedule)" in result.stderr
    resolved = json.loads((run / "recipe.json").read_text())
    assert resolved["factory"]["image_size"] == 32  # a cheaper input size
    assert resolved["select_by"] == "val_loss" and resolved["split_sizes"]["validation"] > 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["lr"]["base"] for r in records] == pytest.approx([1e-8, 1e-8, 1e-9])
    record = records[-1]
    assert np.isfinite(record["loss"]) and 0 <= record["uar"] <= 1
    assert set(record["loss_terms"]) == {"L_similarity", "L_polarity", "L_contrast", "L_global"}
    assert all(np.isfinite(r["val_loss"]) for r in records)
    best = torch.load(run / "best.pt", weights_only=False)["training"]
    lowest = min(records, key=lambda r: r["val_loss"])
    assert best["select_by"] == "val_loss" and best["epoch"] == lowest["epoch"]
    assert best["metrics"]["val_loss"] == lowest["val_loss"]
    evaluated = subprocess.run([sys.executable, "-m", "models.evaluate", str(run / "best.pt"), "--dataset", "dfew",
                                "--fold", "1", "--data", str(dfew), "--out", str(tmp_path / "ous.json")],
                               env=ENV, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads((tmp_path / "ous.json").read_text())
    assert results["model"] == "ous" and results["samples"] == 3  # fold 1 tests clips 0, 5 and 10 of 14
    # temperature scaling at the end of training, on the validation split, kept in best.pt and reported by evaluate
    calibration = best["calibration"]
    assert calibration["samples"] == resolved["split_sizes"]["validation"] and calibration["temperature"] > 0
    assert "validation split" in calibration["fitted_on"] and "best.pt calibrated" in result.stderr
    assert results["temperature"] == calibration["temperature"] and 0 <= results["ece_after"] <= 1
    assert (tmp_path / "ous.reliability.png").read_bytes()[:4] == b"\x89PNG"


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


def test_resume_keeps_the_plateau_and_the_mixing_draws(dfew, tmp_path):
    """Stopped after two epochs and resumed, a run with a plateau schedule on a validation metric and a mixed
    batch every step logs the same third epoch (loss, rates, validation loss) as the uninterrupted run."""
    data = json.loads((ROOT / "models" / "configs" / "train" / "baseline.json").read_text())
    data["defaults"] |= {"schedule": "plateau", "warmup_epochs": 0, "mixup": 1.0, "mixup_alpha": 0.4,
                         "plateau": {"monitor": "val_uar", "factor": 0.5, "patience": 1, "stop_lr": 0.0},
                         "validation": {"fraction": 0.3, "seed": 0}}
    own = tmp_path / "mine.json"
    own.write_text(json.dumps(data))
    common = ["--model", "baseline", "--dataset", "dfew", "--fold", "2", "--data", dfew, "--recipe", own,
              "--batch-size", "4"]
    assert train(common + ["--out", tmp_path / "whole", "--epochs", "3"]).returncode == 0
    assert train(common + ["--out", tmp_path / "parts", "--epochs", "2"]).returncode == 0
    resumed = train(common + ["--out", tmp_path / "parts", "--epochs", "3", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def epochs(run):
        lines = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]

    whole = epochs("whole")
    assert epochs("parts") == whole
    assert whole[-1]["lr"]["base"] < whole[0]["lr"]["base"]  # the plateau fired, so its state had to be resumed
    other = train(common[:-1] + ["2", "--out", tmp_path / "parts", "--epochs", "4", "--resume"])
    assert other.returncode == 2 and "batch_size differ" in other.stderr, other.stderr[-2000:]


def test_a_run_the_plateau_stopped_is_not_trained_further_on_resume(dfew, tmp_path):
    data = json.loads((ROOT / "models" / "configs" / "train" / "baseline.json").read_text())
    lr = data["defaults"]["lr"]
    # a stop rate above the rate itself: the run stops after its first epoch
    data["defaults"] |= {"schedule": "plateau", "warmup_epochs": 0,
                         "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1, "stop_lr": 1.5 * lr},
                         "validation": {"fraction": 0.3, "seed": 0}, "select_by": "val_loss"}
    own = tmp_path / "mine.json"
    own.write_text(json.dumps(data))
    common = ["--model", "baseline", "--dataset", "dfew", "--fold", "2", "--data", dfew, "--recipe", own,
              "--batch-size", "4", "--out", tmp_path / "run", "--lr", str(lr)]
    assert train(common + ["--epochs", "6"]).returncode == 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # the plateau stopped it
    resumed = train(common + ["--epochs", "6", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() == lines  # nothing more trained


def test_a_batch_larger_than_the_training_split_is_refused(dfew, tmp_path):
    result = train(["--model", "baseline", "--dataset", "dfew", "--fold", "2", "--data", dfew, "--out",
                    tmp_path / "run", "--batch-size", "64", "--epochs", "1"])
    assert result.returncode == 2 and "fewer than one batch of 64" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run" / "best.pt").exists()


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


def test_clip_guided_trains_at_its_recipes_8_frames_from_a_users_recipe_file(dfew, tmp_path):
    """--recipe FILE: a user's own copy of the paper recipe (here one epoch, no warm-up); the model is built for
    the recipe's T = 8, and so is the checkpoint export rebuilds it from."""
    data = json.loads((ROOT / "models" / "configs" / "train" / "clip_guided.json").read_text())
    data["defaults"] |= {"epochs": 1, "warmup_epochs": 0, "batch_size": 2}
    own = tmp_path / "mine.json"
    own.write_text(json.dumps(data))
    run = tmp_path / "cg"
    result = train(["--model", "clip_guided", "--backbone", "tiny", "--dataset", "dfew", "--fold", "1", "--data",
                    dfew, "--out", run, "--recipe", own, "--max-steps", "1", "--image-size", "32"])
    assert result.returncode == 0, result.stderr[-2000:]
    resolved = json.loads((run / "recipe.json").read_text())
    assert resolved["num_frames"] == 8 and resolved["epochs"] == 1 and resolved["factory"]["num_frames"] == 8
    from models.checkpoint import load_model

    model, meta = load_model(run / "best.pt")  # what export builds the bundle from (tests/test_recipe_frames.py)
    assert model.bundle_cfg["num_frames"] == 8 and meta["factory"]["num_frames"] == 8


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
