"""`python -m bench gpu [--device cuda|cpu] [--tiny] [--out FILE]`: the GPU acceptance run, one command.

In order, each part within its own time cap (printed first; what a cap leaves out is named in the JSON):
1. the device's matrix-multiply rate at each precision measured here (bf16 and fp16 on a GPU, fp32 on a CPU);
2. per registered method, at its recipe's backbone (the paper's), random weights: one mixed-precision training
   step per recipe batch size (bench/gpu_training.py), then eager window latency at batch 1, 8 and 32 per
   precision, against the bound that rate gives (bench/gpu_inference.py);
3. the service's PyTorch backend (EMOTION_BACKEND=pytorch) fed 16 faces at 8 fps (bench/gpu_service.py);
4. the project's export of that checkpoint to a bundle, with ONNX Runtime parity on this machine's CPU;
5. torch.compile's window latency, method by method (the service's first) while the budget lasts.
A part that fails is recorded and the run goes on; the JSON is rewritten after every part, so a run cut short
still leaves what it measured. `--tiny` runs the same code on tiny configurations (batch 2) in a minute or two;
on a CPU everything runs in fp32 (bf16 is emulated on most CPUs) and torch.compile uses the aot_eager backend
(graph capture without inductor's C++ build, which takes minutes on a small CPU).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import subprocess
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch

from bench import gpu_inference, gpu_service, gpu_training
from bench.machine import RESULTS_DIR, machine_facts

log = logging.getLogger("bench.gpu")

# Seconds per part. A GPU run must end within 8 minutes including the wheels' install and Python's start-up
# (~30 s): these add up to under 7. Training, inference and compile skip what would overrun them (and name it);
# service and export run once (the service for a fixed 30 s), and are skipped when the run is already late.
BUDGET_S = {"matmul": 15, "training": 120, "inference": 70, "compile": 80, "service": 55, "export": 60}
TINY_BUDGET_S = {"matmul": 5, "training": 60, "inference": 30, "compile": 20, "service": 15, "export": 30}
SERVICE_METHOD = "pe_clip"  # docs/RESEARCH.md's training example: CLIP frozen, ViT-B-16, what a GPU server would run
SERVICE_SECONDS, TINY_SERVICE_SECONDS = 30.0, 4.0
BATCHES, TINY_BATCHES = (1, 8, 32), (1, 2)


class Part:
    """A time cap shared by all the pieces of one part; time counts only while the part runs."""

    def __init__(self, name: str, cap_s: float):
        self.name, self.cap_s, self.spent_s, self.skipped = name, cap_s, 0.0, []
        self.estimate = 0.0  # seconds the next piece is expected to take (set by whoever knows)

    def allows(self, estimate_s: float) -> bool:
        return self.spent_s + estimate_s <= self.cap_s

    def skip(self, what: str) -> None:
        self.skipped.append(what)
        log.warning("%s: no time left in its %.0f s budget for %s", self.name, self.cap_s, what)

    @contextmanager
    def running(self):
        started = time.perf_counter()
        try:
            yield self
        finally:
            self.spent_s += time.perf_counter() - started


def driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else version
    except Exception:  # no NVML binding or no driver: ask nvidia-smi
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired):
            return None


def device_facts(device: torch.device) -> dict:
    import importlib.metadata

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    facts = machine_facts() | {"torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                               "onnx": version("onnx"), "open_clip": version("open_clip_torch"),
                               "numpy": version("numpy")}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts |= {"card": props.name, "capability": f"{props.major}.{props.minor}",
                  "multiprocessors": props.multi_processor_count, "memory_gib": round(props.total_memory / 2 ** 30, 1),
                  "bf16": torch.cuda.is_bf16_supported(), "driver": driver_version()}
    return facts


def failure(exc: BaseException) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
            "traceback": traceback.format_exc(limit=6)[-2000:]}


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or any(
        sign in str(exc) for sign in ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED"))


def train_method(method: str, recipe, sizes: list[int], device: torch.device, tiny: bool):
    """The model (kept for the inference part) and one training row per batch size; a batch that runs out of
    memory is recorded and retried at half the size, down to 1, so the run says what fits."""
    dtype = gpu_training.amp_dtype(device)
    model, optimizer, loss_fn = gpu_training.build_for_training(method, recipe, device, tiny)
    rows = []
    for batch in ([2] if tiny else sizes):
        while batch >= 1:
            try:
                rows.append(gpu_training.training_step(model, optimizer, loss_fn, batch, device, dtype,
                                                       timed_steps=1 if tiny else 2))
                break
            except Exception as exc:
                if not is_oom(exc):
                    raise
                rows.append({"batch": batch, "error": "out of memory"})
                optimizer.zero_grad(set_to_none=True)
                free(device)
                batch //= 2
    del optimizer, loss_fn
    free(device)
    return model, rows


def built_model(method: str, device: torch.device, tiny: bool) -> torch.nn.Module:
    """The model as training builds it (the recipe's frames, input size, loss constants), for inference alone."""
    recipe, _, _ = gpu_training.recipe_plan(method)
    return gpu_training.build_for_training(method, recipe, device, tiny)[0]


def bench_method(method: str, device: torch.device, tiny: bool, precisions: list[str], rates: dict[str, float],
                 parts: dict[str, Part]) -> dict:
    """Training, then eager inference on the same model; `rates` may lack a precision (its matrix-multiply
    measurement failed): its rows then have no bound."""
    row: dict = {"method": method, "errors": {}}
    batches = list(TINY_BATCHES if tiny else BATCHES)
    training, inference = parts["training"], parts["inference"]
    model = None
    with training.running():
        try:
            recipe, backbone, sizes = gpu_training.recipe_plan(method)
            backbone = "tiny" if tiny and backbone != gpu_training.NOT_A_CLIP else backbone
            row |= {"backbone": backbone, "recipe_batch_sizes": sizes}
            if training.allows(training.estimate):
                started = time.perf_counter()
                model, row["training"] = train_method(method, recipe, sizes, device, tiny)
                training.estimate = time.perf_counter() - started
            else:
                training.skip(f"{method} training")
        except Exception as exc:
            row["errors"]["training"] = failure(exc)
            free(device)
    if not inference.allows(inference.estimate):
        inference.skip(f"{method} inference")
        return row
    with inference.running():
        started = time.perf_counter()
        try:
            if model is None:  # training failed or was skipped
                model = built_model(method, device, tiny)
            model.eval()
            row["gflops_per_window"] = gpu_inference.window_gflops(model, device)
            row["bound_s_per_window"] = {name: row["gflops_per_window"] / (rates[name] * 1e3) if name in rates else None
                                         for name in precisions}
            row["eager"] = gpu_inference.measure_eager(model, device, precisions, batches, row["bound_s_per_window"],
                                                       inference)
        except Exception as exc:
            row["errors"]["inference"] = failure(exc)
        inference.estimate = time.perf_counter() - started
    del model
    free(device)
    return row


def export_part(checkpoint: Path, out_dir: Path) -> dict:
    """The project's export path (python -m export CHECKPOINT) on this machine's CPU, with parity on random windows
    and on real face windows from the sample clip where PyAV is here to decode it."""
    from export.from_checkpoint import export_checkpoint
    from service.config import SAMPLE_CLIP

    try:
        import av  # noqa: F401

        real_clip = Path(SAMPLE_CLIP) if Path(SAMPLE_CLIP).is_file() else None
    except ImportError:
        real_clip = None
    started = time.perf_counter()
    bundle = export_checkpoint(checkpoint, out_dir, real_clip=real_clip)
    spec = bundle.spec
    return {"method": spec.method, "backbone": spec.backbone, "seconds": time.perf_counter() - started,
            "parity_max_abs_diff": spec.parity, "opset": spec.opset, "onnxruntime_providers": ["CPUExecutionProvider"],
            "real_clip_windows": real_clip is not None, "frame_cache": spec.frame_cache is not None,
            "onnx_mib": round(sum(p.stat().st_size for p in bundle.directory.glob("*.onnx")) / 2 ** 20, 1)}


def run(device_name: str = "cuda", tiny: bool = False, out: Path | None = None,
        methods: list[str] | None = None) -> dict:
    from models.registry import list_models

    wall = time.perf_counter()
    device = torch.device("cuda:0" if device_name == "cuda" else device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but PyTorch sees no CUDA device here (use --device cpu)")
    budget = TINY_BUDGET_S if tiny else BUDGET_S
    parts = {name: Part(name, cap) for name, cap in budget.items()}
    print("budget (s): " + ", ".join(f"{k} {v}" for k, v in budget.items()) + f"; total {sum(budget.values())}",
          flush=True)
    date = dt.datetime.now(dt.timezone.utc).date().isoformat()
    out = out or RESULTS_DIR / f"gpu-{date}{'-cpu' if device.type == 'cpu' else ''}{'-tiny' if tiny else ''}.json"
    result: dict = {"machine": device_facts(device), "device": str(device), "tiny": tiny, "budget_s": budget,
                    "methods": [], "errors": {}}

    def save() -> None:
        result["spent_s"] = {name: round(p.spent_s, 1) for name, p in parts.items()}
        result["skipped"] = {name: p.skipped for name, p in parts.items() if p.skipped}
        result["wall_s"] = round(time.perf_counter() - wall, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    # 1. the bound's denominator
    precisions = (["bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp16"]) if device.type == "cuda" \
        else ["fp32"]
    with parts["matmul"].running():
        n, repeats = (8192, 10) if device.type == "cuda" else (1024, 3)
        try:
            result["matmul_tflops"] = {p: gpu_inference.matmul_tflops(device, gpu_inference.DTYPES[p], n, repeats)
                                       for p in precisions}
            result["matmul_n"] = n
        except Exception as exc:
            result["errors"]["matmul"] = failure(exc)
    rates = result.get("matmul_tflops") or {}
    save()

    # 2. training and eager inference, method by method (the service's method first: it is compiled first, below)
    order = sorted(methods or list_models(), key=lambda m: m != SERVICE_METHOD)
    for method in order:
        print(f"  {method} ...", flush=True)
        result["methods"].append(bench_method(method, device, tiny, precisions, rates, parts))
        save()

    # 3. the service's PyTorch backend, and 4. the export of the same checkpoint
    total = sum(budget.values())

    def in_time(part: str) -> bool:
        """False (and the part named as skipped) when the whole run's budget has no room left for this part."""
        if time.perf_counter() - wall + budget[part] <= total:
            return True
        parts[part].skip(f"{part} (the run was {time.perf_counter() - wall:.0f} s in)")
        return False

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        checkpoint = None
        with parts["service"].running():
            try:
                _, backbone, _ = gpu_training.recipe_plan(SERVICE_METHOD)
                checkpoint = gpu_service.save_random_checkpoint(SERVICE_METHOD, "tiny" if tiny else backbone,
                                                                Path(tmp) / "random.pt")
                if in_time("service"):
                    result["service"] = gpu_service.run_service_load(
                        checkpoint, "cuda:0" if device.type == "cuda" else "cpu",
                        duration_s=TINY_SERVICE_SECONDS if tiny else SERVICE_SECONDS)
            except Exception as exc:
                result["errors"]["service"] = failure(exc)
        free(device)
        save()
        if checkpoint is not None and in_time("export"):
            with parts["export"].running():
                try:
                    result["export"] = export_part(checkpoint, Path(tmp) / "bundle")
                except Exception as exc:
                    result["errors"]["export"] = failure(exc)
    save()

    # 5. torch.compile last: its compile times are the least predictable, and whatever it overruns, every other
    # figure is saved by then. Its cap is what is left of the whole budget, at most its own.
    compiling = parts["compile"]
    compiling.cap_s = result["compile_cap_s"] = max(0.0, min(compiling.cap_s, total - (time.perf_counter() - wall)))
    result["compile_backend"] = backend = "inductor" if device.type == "cuda" else "aot_eager"
    batches = list(TINY_BATCHES if tiny else BATCHES)
    for row in result["methods"]:
        method, dtype = row["method"], precisions[0]  # bf16 where a GPU has it, fp32 on a CPU
        if "eager" not in row:
            continue
        if not compiling.allows(compiling.estimate):
            compiling.skip(f"{method} compiled")
            continue
        print(f"  {method} compiled ...", flush=True)
        with compiling.running():
            try:
                model = built_model(method, device, tiny).eval()
                row["compiled"] = gpu_inference.measure_compiled(model, device, dtype, batches,
                                                                 row["bound_s_per_window"][dtype], compiling, backend)
            except Exception as exc:
                row["errors"]["compile"] = failure(exc)
            model = None
            free(device)
        save()
    save()
    result["out"] = str(out)
    return result


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def describe(result: dict) -> str:
    m = result["machine"]
    rates = result.get("matmul_tflops", {})
    lines = [f"device {result['device']}: {m.get('card') or m.get('cpu')}, driver {m.get('driver')}, torch "
             f"{m.get('torch')} (CUDA {m.get('torch_cuda')}), matmul " +
             ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in rates.items()) + f" (n={result.get('matmul_n')})",
             "", "training: method | backbone | batch | dtype | step ms | samples/s | peak GiB | loss | grads ok"]
    for r in result["methods"]:
        for t in r.get("training", []):
            if "error" in t:
                lines.append(f"{r['method']} | {r['backbone']} | {t['batch']} | - | {t['error']}")
                continue
            peak = "-" if t["peak_memory_gib"] is None else f"{t['peak_memory_gib']:.1f}"
            lines.append(f"{r['method']} | {r['backbone']} | {t['batch']} | {t['dtype']} | {_ms(t['step_s'])} | "
                         f"{t['samples_per_s']:.1f} | {peak} | {t['loss']:.3f} | {'yes' if t['ok'] else 'NO'}")
    lines += ["", "inference: method | GFLOP/window | batch | dtype | mode | p50 ms | p95 ms | windows/s | of bound"]
    for r in result["methods"]:
        modes = [("eager", r.get("eager", {}))]
        if "compiled" in r:
            modes.append(("compiled", r["compiled"]["batches"]))
        for mode, batches in modes:
            for batch, by_dtype in batches.items():
                for dtype, t in by_dtype.items():
                    if dtype == "error":
                        lines.append(f"{r['method']} | - | {batch} | - | {mode} | {t}")
                        continue
                    lines.append(f"{r['method']} | {r['gflops_per_window']:.1f} | {batch} | {dtype} | {mode} | "
                                 f"{_ms(t['p50_s'])} | {_ms(t['p95_s'])} | {t['windows_per_s']:.1f} | "
                                 f"{'-' if t['of_bound'] is None else format(t['of_bound'], '.0%')}")
    if s := result.get("service"):
        lines += ["", f"service ({s['method']} {s['backbone']}, {s['providers'][0]}): {s['faces']} faces x "
                      f"{s['fps_per_face']:g} fps for {s['duration_s']:g} s: {s['sustained_windows_per_s']:.1f} "
                      f"windows/s sustained (offered {s['offered_windows_per_s']:.1f}), frame-to-event p50 "
                      f"{_ms(s['latency_p50_s'])} ms, p95 {_ms(s['latency_p95_s'])} ms, kept up: {s['kept_up']}"]
    if e := result.get("export"):
        lines.append(f"export ({e['method']} {e['backbone']}): {e['seconds']:.1f} s, parity {e['parity_max_abs_diff']}")
    for r in result["methods"]:
        for part, err in r.get("errors", {}).items():
            lines.append(f"FAILED {r['method']} {part}: {err['error']}")
    for part, err in result.get("errors", {}).items():
        lines.append(f"FAILED {part}: {err['error']}")
    for part, what in result.get("skipped", {}).items():
        lines.append(f"skipped ({part} budget): {', '.join(what)}")
    lines.append(f"wall {result.get('wall_s')} s; spent per part (s): {result.get('spent_s')}")
    return "\n".join(lines)
