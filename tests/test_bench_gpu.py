"""`python -m bench gpu --device cpu --tiny`: the GPU acceptance run's own code, on tiny configurations on a CPU.
Figures are printed, never asserted (machines are noisy); what is checked is that every part ran or says why not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "bench", "gpu", "--device", "cpu", "--tiny", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_every_method_trains_or_is_named_as_skipped(tiny_run):
    from models import list_models

    result, _ = tiny_run
    rows = {r["method"]: r for r in result["methods"]}
    assert set(rows) == set(list_models())  # the registry's methods, dfer_clip and later ones included
    skipped = result["skipped"].get("training", [])
    trained = 0
    for method, row in rows.items():
        assert not row["errors"], (method, row["errors"])
        if f"{method} training" in skipped:
            continue
        (step,) = row["training"]  # --tiny: batch 2 only
        assert step["batch"] == 2 and step["ok"], step  # finite loss, gradients where they belong, frozen untouched
        assert step["trainable_params"] > 0 and step["step_s"] > 0
        trained += 1
    assert trained >= 1


def test_inference_rows_are_against_the_measured_rate(tiny_run):
    result, _ = tiny_run
    rate = result["matmul_tflops"]["fp32"]
    assert rate > 0
    measured = [r for r in result["methods"] if "eager" in r]
    assert measured
    for row in measured:
        assert row["bound_s_per_window"]["fp32"] == pytest.approx(row["gflops_per_window"] / (rate * 1e3))
        for batch, by_dtype in row["eager"].items():
            timing = by_dtype["fp32"]
            assert timing["p95_s"] >= timing["p50_s"] > 0
            assert timing["of_bound"] == pytest.approx(row["bound_s_per_window"]["fp32"] * int(batch) / timing["p50_s"])
    compiled = [r["compiled"] for r in result["methods"] if r.get("compiled", {}).get("batches")]
    assert compiled or result["skipped"].get("compile")  # compiled somewhere, or the budget says where it did not


def test_service_backend_and_export_ran(tiny_run):
    result, stdout = tiny_run
    service = result["service"]
    assert service["providers"] == ["PyTorch (cpu)"] and service["faces"] == 16
    assert service["windows_done"] > 0 and service["latency_p95_s"] >= service["latency_p50_s"] > 0
    assert service["worker_errors"] == 0
    export = result["export"]
    assert max(export["parity_max_abs_diff"].values()) <= 1e-4
    assert result["machine"]["torch"] and result["errors"] == {}
    assert "training: method" in stdout and "service (" in stdout


def test_gpu_runs_alone():
    from bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["gpu", "models"])


def test_compiled_latency_is_timed_only_after_the_compiling_calls(monkeypatch):
    """A graph break's resumed frames compile on the calls after the first: those calls are not timed."""
    import torch

    from bench import gpu_inference
    from bench.gpu import Part

    calls = []

    class Model(torch.nn.Module):
        bundle_cfg = {"method": "fake", "num_frames": 2, "channels": 3, "image_size": 4}

        def forward(self, faces, scene):
            calls.append(len(calls))
            return faces.sum()

    timed_from = []

    def latency(fn, device, repeats, warmup):
        timed_from.append(len(calls) + warmup)  # the first call whose time is kept
        return {"p50_s": 1.0, "p95_s": 1.0, "runs": repeats}

    monkeypatch.setattr(gpu_inference, "latency", latency)
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)
    out = gpu_inference.measure_compiled(Model(), torch.device("cpu"), "fp32", [1], None, Part("compile", 60),
                                         "aot_eager")
    assert timed_from == [1 + gpu_inference.SETTLE_CALLS]
    assert len(out["batches"][1]["fp32"]["settle_calls_s"]) == gpu_inference.SETTLE_CALLS
