"""Cheaper CPU paths, per method, against the fp32 bound of the model as built (see bench/models.py):

- int8 (export --int8: ONNX Runtime dynamic quantisation, per channel) at the model's input size and at smaller
  inputs (export --image-size: position embeddings interpolated), each with its agreement against the fp32 PyTorch
  model at full size on real face windows of the sample clip (top-1 agreement, largest probability difference);
- the frame cache in a stream: for methods whose frames pass the encoder independently (OUS here), a window
  only encodes the frames it adds (the hop); measured on a stream of overlapping windows through the service's
  engine, per window, against the whole window.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.models import latency, sgemm_gflops

DEFAULT_BACKBONE = "ViT-B-16"


def smaller_sizes(full: int, patch: int) -> tuple[int, ...]:
    """The full size, about 5/7 of it and half of it, each a multiple of the patch (224 -> 224, 160, 112)."""
    sizes = [full] + [max(patch, round(full * f / patch) * patch) for f in (5 / 7, 1 / 2)]
    return tuple(dict.fromkeys(sizes))


def build(name: str, backbone: str, size: int | None = None):
    import torch

    from models import create_model
    from models.registry import set_image_size

    torch.manual_seed(0)  # the same random weights at every size
    model = create_model(name, dataset="dfew", backbone=backbone).eval()
    if size is not None:
        set_image_size(model, size)
    return model


def stream_cost(bundle, hop: int, windows: int = 3) -> dict:
    """Seconds per window in a stream of one face whose windows overlap by num_frames - hop frames, with the
    engine's frame cache (steady state: the first window, which encodes all its frames, is not counted)."""
    from service.inference import FrameFeatureCache, OnnxEngine
    from service.windows import WindowBuffer

    engine = OnnxEngine(bundle, providers=["CPUExecutionProvider"])
    spec, rng = bundle.spec, np.random.default_rng(0)
    buffer, cache = WindowBuffer(track_id=1, num_frames=spec.num_frames, hop=hop), FrameFeatureCache()
    shape = (spec.image_size, spec.image_size, spec.channels)
    times, frame = [], 0
    while len(times) < windows + 1:
        scene = rng.integers(0, 255, shape, dtype=np.uint8) if spec.needs_scene else None
        window = buffer.push(rng.integers(0, 255, shape, dtype=np.uint8), frame / 8, (0, 0, 1, 1), scene, frame)
        frame += 1
        if window is not None:
            started = time.perf_counter()
            engine.predict_windows([("bench", window)], cache)
            times.append(time.perf_counter() - started)
    return {"hop": hop, "s_per_window": float(np.median(times[1:])), "windows": windows,
            "frames_encoded_per_window": (hop * (2 if spec.needs_scene else 1))}


def bench_method(name: str, backbone: str, sizes, repeats: int, hops) -> dict:
    import onnxruntime as ort

    from export.agreement import bundle_probabilities, compare, torch_probabilities
    from export.int8 import quantize_bundle
    from export.onnx_export import export_bundle, random_inputs
    from export.real_inputs import real_face_windows
    from models.summary import window_gflops
    from service.config import SAMPLE_CLIP

    full = build(name, backbone)
    cfg = full.bundle_cfg
    one = random_inputs(cfg, batch=1)
    gflops = window_gflops(full, one["faces"], one.get("scene"))
    rate = sgemm_gflops()  # beside this method's timings: a shared machine's speed drifts over a long run
    row = {"model": name, "backbone": cfg["backbone"], "image_size": cfg["image_size"], "gflops_per_window": gflops,
           "sgemm_gflops": rate, "bound_s_per_window": gflops / rate, "sizes": []}
    real = real_face_windows(cfg, SAMPLE_CLIP, max_windows=8)
    reference = torch_probabilities(full, real) if real else None
    patch = full.backbone.clip.visual.conv1.kernel_size[0]
    for size in sizes or smaller_sizes(cfg["image_size"], patch):
        model = full if size == cfg["image_size"] else build(name, backbone, size)
        inputs = random_inputs(model.bundle_cfg, batch=1)
        feeds = {k: v.numpy() for k, v in inputs.items()}
        real_at_size = real_face_windows(model.bundle_cfg, SAMPLE_CLIP, max_windows=8) if real else None
        with tempfile.TemporaryDirectory() as tmp:
            bundle = export_bundle(model, Path(tmp) / "bundle", tolerance=1e-3)
            entry = {"image_size": size}
            for precision in ("fp32", "int8"):
                if precision == "int8":
                    bundle = quantize_bundle(bundle)
                session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
                timing = latency(lambda: session.run(None, feeds), repeats)
                agreement = compare(bundle_probabilities(bundle, real_at_size, session), reference,
                                    f"fp32 PyTorch at {cfg['image_size']} px") if real else None
                entry[precision] = timing | {"speedup_vs_bound": row["bound_s_per_window"] / timing["p50_s"],
                                             "agreement": agreement.model_dump() if agreement else None}
                if bundle.spec.frame_cache is not None:
                    whole = timing["p50_s"]
                    entry[precision]["stream"] = [
                        cost | {"speedup_vs_whole_window": whole / cost["s_per_window"],
                                "speedup_vs_bound": row["bound_s_per_window"] / cost["s_per_window"]}
                        for cost in (stream_cost(bundle, hop) for hop in hops)]
        row["sizes"].append(entry)
    return row


def run(methods=None, backbone: str = DEFAULT_BACKBONE, sizes=None, repeats: int = 3, hops=(8, 4)) -> dict:
    from models import list_models

    # The baseline is left out: 6 ms a window in fp32 already, and int8 makes its small convolutions slower.
    rows = [bench_method(name, backbone, sizes, repeats, hops)
            for name in methods or [m for m in list_models() if m != "baseline"]]
    return {"backbone": backbone, "rows": rows}


def describe(result: dict) -> str:
    lines = ["speedups are against the fp32 bound of the model at its full size (numpy sgemm rate measured beside "
             "each method)",
             "model | backbone | px | precision | p50 s (p95) | x bound | top-1 agreement / max prob diff vs fp32 "
             "full size (real windows)"]
    for r in result["rows"]:
        lines.append(f"{r['model']}: {r['gflops_per_window']:.0f} GFLOP per window, sgemm {r['sgemm_gflops']:.0f} "
                     f"GFLOP/s, bound {r['bound_s_per_window']:.2f} s")
        for entry in r["sizes"]:
            for precision in ("fp32", "int8"):
                e = entry[precision]
                a = e["agreement"]
                agree = f"{a['top1']:.0%} / {a['max_prob_diff']:.2e} on {a['windows']}" if a else "no real windows"
                lines.append(f"{r['model']} | {r['backbone']} | {entry['image_size']} | {precision} | "
                             f"{e['p50_s']:.3f} ({e['p95_s']:.3f}) | {e['speedup_vs_bound']:.2f}x | {agree}")
                for s in e.get("stream", []):
                    lines.append(f"  stream, hop {s['hop']} (frame cache): {s['s_per_window']:.3f} s per window, "
                                 f"{s['speedup_vs_whole_window']:.2f}x the whole window, "
                                 f"{s['speedup_vs_bound']:.2f}x the bound")
    return "\n".join(lines)
