"""Window latency of a built model on its device: p50/p95 per batch size and autocast precision, eager and
torch.compile, against the bound that the device's measured matrix-multiply rate puts on it (a window's FLOPs over
that rate: no implementation at that precision can take less)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from bench.stats import latency_summary

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SETTLE_CALLS = 3  # compiled calls after the first before any is timed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    """Best-of-`repeats` rate of one n x n x n matrix product at `dtype` on `device`, in TFLOP/s (3 warm-ups)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e12


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


def latency(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> dict:
    """Seconds per call, host-side with a device sync on both ends: what a caller waiting for the result sees."""
    for _ in range(warmup):
        fn()
    return latency_summary([_timed(fn, device) for _ in range(repeats)])


def window_inputs(cfg: dict, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Normalised float32 windows already on the device (the host-to-device copy is not in the latency)."""
    gen = torch.Generator().manual_seed(batch)
    shape = (batch, cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"])
    faces = torch.randn(shape, generator=gen).to(device)
    return faces, (torch.randn(shape, generator=gen).to(device) if cfg.get("needs_scene") else None)


def forward(model, device: torch.device, dtype: torch.dtype, faces, scene) -> Callable[[], object]:
    def call():
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return model(faces, scene)
    return call


def window_gflops(model, device: torch.device) -> float:
    """models/summary.py's counter on one window (batch 1), on the device the model is on."""
    from models.summary import window_gflops as count

    faces, scene = window_inputs(model.bundle_cfg, 1, device)
    return count(model, faces, scene)


def row(timing: dict, batch: int, bound_s: float | None) -> dict:
    return timing | {"windows_per_s": batch / timing["p50_s"],
                     "of_bound": None if bound_s is None else bound_s * batch / timing["p50_s"]}


def repeats_for(batch: int, device: torch.device) -> int:
    if device.type != "cuda":
        return 2
    return 20 if batch == 1 else 10 if batch <= 8 else 6


def measure_eager(model, device: torch.device, dtypes: list[str], batches: list[int],
                  bounds: dict[str, float | None], part) -> dict:
    """{batch: {dtype: latency row}}; a batch whose estimated time would overrun the part's budget is skipped."""
    cfg, out, last = model.bundle_cfg, {}, 0.0
    for batch in batches:
        if not part.allows(last * 1.5):
            part.skip(f"{cfg['method']} eager batch {batch}")
            continue
        started = time.perf_counter()
        out[batch] = {}
        try:  # one batch size failing (out of memory at 32, say) keeps the others' figures
            faces, scene = window_inputs(cfg, batch, device)
            for name in dtypes:
                timing = latency(forward(model, device, DTYPES[name], faces, scene), device,
                                 repeats_for(batch, device), warmup=2 if device.type == "cuda" else 1)
                out[batch][name] = row(timing, batch, bounds[name])
        except Exception as exc:
            out[batch]["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        faces = scene = None
        last = time.perf_counter() - started
    return out


def measure_compiled(model, device: torch.device, dtype: str, batches: list[int], bound: float | None, part,
                     backend: str) -> dict:
    """torch.compile (mode default, dynamic=False: one graph per batch size) at one precision; compile seconds are
    the first call's. Batch sizes the budget has no room for are skipped and named."""
    import torch._dynamo

    cfg = model.bundle_cfg
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(model, backend=backend, dynamic=False)
    out, estimate = {}, part.estimate
    for batch in batches:
        if not part.allows(estimate):
            part.skip(f"{cfg['method']} compiled batch {batch}")
            continue
        started = time.perf_counter()
        try:
            faces, scene = window_inputs(cfg, batch, device)
            call = forward(compiled, device, DTYPES[dtype], faces, scene)
            compile_s = _timed(call, device)
            # A graph break's resumed frames, and helpers called with a second shape, compile on the next calls,
            # not the first: without these, the timed calls would include compile work (seen on a CPU: 8.2 s,
            # then 1.5 s and 0.26 s, then 19 ms per call).
            settle_s = [_timed(call, device) for _ in range(SETTLE_CALLS)]
            timing = latency(call, device, repeats_for(batch, device), warmup=0)
            out[batch] = {dtype: row(timing, batch, bound) | {"compile_s": compile_s + sum(settle_s),
                                                              "first_call_s": compile_s, "settle_calls_s": settle_s}}
        except Exception as exc:
            out[batch] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
            break  # a graph that does not compile at one batch size will not at the next
        finally:
            faces = scene = call = None
            part.estimate = estimate = max(estimate, time.perf_counter() - started)
    breaks = dict(torch._dynamo.utils.counters.get("graph_break", {}))
    del compiled
    torch._dynamo.reset()  # its caches hold the compiled model (and its memory) otherwise
    return {"backend": backend, "dtype": dtype, "graph_breaks": sum(breaks.values()),
            "graph_break_reasons": sorted(breaks)[:5], "batches": out}
