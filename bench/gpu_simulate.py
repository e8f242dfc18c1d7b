"""`python -m bench gpu --simulate [--tiny] [--out FILE]`: the GPU training path checked on a machine without a GPU.

Per registered method, at its paper recipe (backbone, frames, input size, batch, optimiser, mixing, fp16 autocast):
1. one training step on simulated CUDA tensors (bench/fake_cuda.py: shapes, dtypes and devices, no data): the
   batch made on the CPU as the loader gives it and moved to `cuda`; each mixing the recipe draws (mixup, FMix,
   none); forward and loss under fp16 autocast; backward (torch's engine refuses fake CUDA without a driver, so
   bench/fake_backward.py replays it node by node); the optimiser step. A CPU tensor meeting a CUDA one fails the
   method, as it would on the GPU. The bytes live at each moment give the step's peak memory, counted as from the
   second step on (optimiser state already allocated), i.e. what `python -m bench gpu` measures with
   torch.cuda.max_memory_allocated. Where the paper batch exceeds a 24 GB card, halved batches are simulated too,
   so the card table's "batch that fits" is measured, not extrapolated;
2. the method's training objective run for real on the CPU (tiny backbone) under fp16 and bf16 autocast, with its
   logits driven to a spread of EXTREME_SPREAD between classes (CLIP's logit scale of 100 times a cosine gap of 2)
   and the targets on the least likely class, label-smoothed: the loss, each term and every gradient must be
   finite.
Nothing here measures time. See NOT_COVERED for what a simulation cannot show.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import gpu_training
from bench.fake_backward import backward_anyhow, released_saved_tensors
from bench.fake_cuda import DEVICE, LiveMemory, cuda_autocast, simulated_cuda
from bench.machine import RESULTS_DIR, machine_facts

GIB = 2 ** 30
CARDS_GB = (24, 48, 80)
# Share of a card's memory a step may take: the rest is the CUDA context, cuBLAS/cuDNN workspaces and the caching
# allocator's fragmentation, none of which max_memory_allocated counts.
USABLE_SHARE = 0.9
EXTREME_SPREAD = 200.0
TINY_BATCH = 2
AMP_DTYPE = torch.float16  # what `python -m models.train` autocasts to on a GPU (models/training/loop.py)
NOT_COVERED = [
    "numerics on the GPU (fake tensors carry no values): fp16/bf16 safety is checked for real on the CPU instead, "
    "where autocast's op lists differ slightly from CUDA's",
    "GradScaler: its inf check reads values; the step runs unscaled",
    "torch's autograd engine: the backward is replayed node by node (no hooks, no stream synchronisation, no DDP)",
    "kernel choices a GPU makes at run time: attention follows flash/memory-efficient rules of an sm80+ card, GRU "
    "runs the fused cell instead of cuDNN's",
    "memory outside tensors: CUDA context, cuBLAS/cuDNN workspaces, allocator fragmentation (hence USABLE_SHARE)",
    "data loading, augmentation and multi-GPU (DDP) training",
]


def failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:400]


def mixing_kinds(training) -> list[str]:
    """The batch mixings the recipe draws: mixup and FMix where their probability is positive, and none where
    they leave batches unmixed."""
    mixing = training.mixing
    if mixing is None:
        return ["none"]
    kinds = [kind for kind, p in (("mixup", mixing.mixup_p), ("fmix", mixing.fmix_p)) if p > 0]
    return kinds + (["none"] if mixing.mixup_p + mixing.fmix_p < 1 else [])


def host_batch(cfg: dict, batch: int):
    """Windows, labels (and scene) made on the CPU, as the loader yields them."""
    shape = (batch, cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"])
    faces = torch.randn(shape, device="cpu")
    scene = torch.randn(shape, device="cpu") if cfg.get("needs_scene") else None
    return faces, torch.randint(0, len(cfg["labels"]), (batch,), device="cpu"), scene


def on_device(*tensors: torch.Tensor | None) -> bool:
    return all(t is None or t.device == DEVICE for t in tensors)


def gradient_placement(model: torch.nn.Module) -> dict:
    """Which parameters the backward reached: every trainable one, on the GPU; no frozen one."""
    missing, frozen, elsewhere = [], [], []
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is None:
            missing.append(name)
        elif not p.requires_grad and p.grad is not None:
            frozen.append(name)
        elif p.grad is not None and p.grad.device != DEVICE:
            elsewhere.append(name)
    return {"trainable_without_grad": missing[:5], "frozen_with_grad": frozen[:5], "grads_off_device": elsewhere[:5],
            "ok": not (missing or frozen or elsewhere)}


def _storage_bytes(tensors) -> int:
    memory = LiveMemory()
    for tensor in tensors:
        memory.track(tensor)
    return memory.live


def simulate_step(method: str, recipe, batch: int, tiny: bool) -> dict:
    """One training step of `method` at `batch` on simulated CUDA (see the module's docstring, part 1)."""
    from models.training import build_training

    row: dict[str, Any] = {"batch": batch, "errors": {}}
    started = time.perf_counter()
    with simulated_cuda() as answers:
        try:
            training = build_training(method, recipe, device="cuda", **gpu_training.size_options(recipe, tiny))
        except Exception as exc:
            row["errors"]["build"] = failure(exc)
            return row
        model, optimizer = training.model.train(), training.optimizer
        trainable = [p for p in model.parameters() if p.requires_grad]
        for p in trainable:  # the optimiser's state, as it stands from the second step on
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        row |= {"trainable_params": sum(p.numel() for p in trainable),
                "frozen_params": sum(p.numel() for p in model.parameters() if not p.requires_grad),
                "weights_gib": _storage_bytes([*model.parameters(), *model.buffers()]) / GIB,
                "optimizer_state_gib": _storage_bytes(state) / GIB}
        memory = LiveMemory()
        for tensor in [*model.parameters(), *model.buffers(), *state]:
            memory.track(tensor)
        with memory:
            faces, labels, scene = host_batch(model.bundle_cfg, batch)
            faces, labels = faces.to("cuda", non_blocking=True), labels.to("cuda", non_blocking=True)
            scene = scene.to("cuda", non_blocking=True) if scene is not None else None
            mixed = None
            row["mixing"] = {}
            for kind in mixing_kinds(training):
                try:
                    out = training.targets(faces, labels, np.random.default_rng(0), kind=kind)
                    if not on_device(*out[:2]):
                        raise RuntimeError(f"{kind} left the batch on {out[0].device} / {out[1].device}")
                    row["mixing"][kind] = "ok"
                    mixed = mixed or out[:2]
                except Exception as exc:
                    row["mixing"][kind] = failure(exc)
                    row["errors"][f"mixing ({kind})"] = failure(exc)
            if mixed is None:  # every mixing failed: go on unmixed, for the memory figure
                mixed = training.targets(faces, labels, kind="none")[:2]
            del faces
            before_forward = memory.live
            try:
                with cuda_autocast(AMP_DTYPE if recipe.amp else None), released_saved_tensors():
                    loss = training.objective(mixed[0], mixed[1], scene)[0]
                del mixed
                if not on_device(loss):
                    raise RuntimeError(f"the loss is on {loss.device}")
                row["saved_for_backward_gib"] = (memory.live - before_forward) / GIB
                row["backward"] = backward_anyhow(loss)
                del loss
                row["gradients"] = placement = gradient_placement(model)
                if not placement["ok"]:
                    raise RuntimeError(f"gradients misplaced: {placement}")
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                row["host_reads_from_gpu"] = answers.host_reads  # each a device sync (build included)
            except Exception as exc:
                row["errors"]["step"] = failure(exc)
                row["traceback"] = traceback.format_exc(limit=-4)[-1500:]
    row["peak_memory_gib"] = memory.peak / GIB
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


@contextmanager
def amplified_logits(model: torch.nn.Module, factor: float, where: str):
    """Multiply the method's logits by `factor`: at CLIP's logit scale (what every CLIP method multiplies its
    cosines by) or, `where="output"`, at the model's output (methods whose loss reads forward's logits)."""
    if where == "logit_scale":
        backbone = model.backbone
        original = backbone.logit_scale
        backbone.logit_scale = lambda: original() * factor
        try:
            yield
        finally:
            del backbone.logit_scale
    else:
        handle = model.register_forward_hook(lambda module, args, out: out * factor)
        try:
            yield
        finally:
            handle.remove()


def _spread(logits: torch.Tensor) -> float:
    logits = logits.detach().float().flatten(0, -2)
    return float((logits.amax(-1) - logits.amin(-1)).min())


def extreme_logits_lever(training, faces, targets, scene) -> tuple[str, float]:
    """(where, factor) that take this method's logits to EXTREME_SPREAD: the logit scale where it moves them,
    else the output."""
    def spread(where: str, factor: float) -> float:
        with torch.no_grad(), amplified_logits(training.model, factor, where):
            return _spread(training.objective(faces, targets, scene)[2])

    base = spread("output", 1.0)
    scalable = hasattr(getattr(training.model, "backbone", None), "logit_scale")
    where = "logit_scale" if scalable and spread("logit_scale", 2.0) > 1.5 * base else "output"
    return where, EXTREME_SPREAD / max(base, 1e-6)


def autocast_check(method: str, recipe, dtypes: tuple[torch.dtype, ...]) -> dict:
    """The objective for real on the CPU under each autocast dtype, logits at EXTREME_SPREAD (see part 2)."""
    from models.training import build_training

    torch.manual_seed(0)
    training = build_training(method, recipe, device="cpu", **gpu_training.size_options(recipe, tiny=True))
    model = training.model.train()
    faces, labels, scene = gpu_training.random_batch(model.bundle_cfg, 2, torch.device("cpu"))
    targets = training.targets(faces, labels, kind="none")[1]
    where, factor = extreme_logits_lever(training, faces, targets, scene)
    with torch.no_grad(), amplified_logits(model, factor, where):  # the target: the least likely class
        worst = training.objective(faces, targets, scene)[2].float().argmin(-1)
    classes = targets.shape[-1]
    targets = 0.9 * torch.nn.functional.one_hot(worst, classes).float() + 0.1 / classes
    result: dict[str, Any] = {"lever": where}
    for dtype in dtypes:
        model.zero_grad(set_to_none=True)
        with amplified_logits(model, factor, where):
            with torch.autocast("cpu", dtype=dtype):
                total, terms, logits = training.objective(faces, targets, scene)
            total.backward()
        finite = {"loss": bool(torch.isfinite(total))} | {name: bool(torch.isfinite(t)) for name, t in terms.items()}
        finite["gradients"] = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
        result[str(dtype).removeprefix("torch.")] = {"logit_spread": round(_spread(logits), 1),
                                                    "finite": finite, "ok": all(finite.values())}
    model.zero_grad(set_to_none=True)
    return result


def card_table(steps: list[dict], paper_batch: int) -> dict:
    """Per card: does the paper batch fit, and the largest simulated batch that does."""
    usable = {gb: gb * USABLE_SHARE for gb in CARDS_GB}
    measured = {s["batch"]: s["peak_memory_gib"] for s in steps if not s["errors"] or "step" not in s["errors"]}
    table = {}
    for gb, room in usable.items():
        fitting = [b for b, peak in measured.items() if peak <= room]
        table[str(gb)] = {"usable_gib": round(room, 1), "paper_batch_fits": measured.get(paper_batch, 1e9) <= room,
                          "largest_batch": max(fitting) if fitting else None}
    return table


def simulate_method(method: str, tiny: bool) -> dict:
    recipe, backbone, sizes = gpu_training.recipe_plan(method)
    row: dict[str, Any] = {"method": method, "errors": {}, "steps": []}
    size = gpu_training.size_options(recipe, tiny)
    row |= {"backbone": size["backbone"] or backbone, "image_size": size["image_size"] or recipe.image_size,
            "num_frames": recipe.num_frames, "amp": str(AMP_DTYPE).removeprefix("torch.") if recipe.amp else None,
            "paper_batch": max(sizes), "recipe_batch_sizes": sizes}
    batches = [TINY_BATCH] if tiny else sorted(sizes, reverse=True)
    while batches:
        batch = batches.pop(0)
        print(f"  {method} batch {batch} ...", flush=True)
        step = simulate_step(method, recipe, batch, tiny)
        row["steps"].append(step)
        smaller = batch // 2
        if (not tiny and not batches and "step" not in step["errors"] and smaller >= 1
                and step["peak_memory_gib"] > min(CARDS_GB) * USABLE_SHARE):
            batches.append(smaller)  # until it fits the smallest card
    first = row["steps"][0]
    row["batch"] = first["batch"]
    row["peak_memory_gib"] = first.get("peak_memory_gib")
    row["errors"] |= {f"batch {s['batch']}: {part}": e for s in row["steps"] for part, e in s["errors"].items()}
    if not tiny:
        row["cards"] = card_table(row["steps"], row["paper_batch"])
    try:
        row["autocast"] = autocast_check(method, recipe, (torch.float16, torch.bfloat16))
        for dtype, check in row["autocast"].items():
            if isinstance(check, dict) and not check["ok"]:
                bad = [name for name, fine in check["finite"].items() if not fine]
                row["errors"][f"{dtype} autocast"] = f"not finite at logit spread {check['logit_spread']}: " + \
                    ", ".join(bad)
    except Exception as exc:
        row["errors"]["autocast"] = failure(exc)
    row["ok"] = not row["errors"]
    return row


def default_out(tiny: bool) -> Path:
    date = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return RESULTS_DIR / f"gpu-simulated-{date}{'-tiny' if tiny else ''}.json"


def run(tiny: bool = False, out: Path | None = None, methods: list[str] | None = None) -> dict:
    from models.registry import list_models

    out = out or default_out(tiny)
    result: dict[str, Any] = {"machine": machine_facts(), "simulated_device": f"{DEVICE} (FakeTensorMode)",
                              "tiny": tiny, "usable_share": USABLE_SHARE, "cards_gb": list(CARDS_GB),
                              "extreme_logit_spread": EXTREME_SPREAD, "not_covered": NOT_COVERED, "methods": []}
    started = time.perf_counter()
    for method in methods or list_models():
        result["methods"].append(simulate_method(method, tiny))
        result["wall_s"] = round(time.perf_counter() - started, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    result["out"] = str(out)
    return result


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def describe(result: dict) -> str:
    lines = [f"simulated {result['simulated_device']} on {result['machine']['cpu']}, torch "
             f"{result['machine']['torch']}, {result['machine']['date']}{' (tiny)' if result['tiny'] else ''}",
             "method | backbone | frames | batch | peak GiB | weights GiB | optimiser GiB | saved for backward GiB | "
             "backward | fp16 | bf16 | ok"]
    for r in result["methods"]:
        auto = r.get("autocast", {})
        for s in r["steps"]:
            lines.append(" | ".join([
                r["method"], r["backbone"], str(r["num_frames"]), str(s["batch"]), _gib(s.get("peak_memory_gib")),
                _gib(s.get("weights_gib")), _gib(s.get("optimizer_state_gib")), _gib(s.get("saved_for_backward_gib")),
                s.get("backward", "-"), "ok" if auto.get("float16", {}).get("ok") else "NO",
                "ok" if auto.get("bfloat16", {}).get("ok") else "NO", "yes" if r["ok"] else "NO"]))
    if not result["tiny"]:
        lines += ["", f"cards (a step may use {USABLE_SHARE:.0%} of the card): method | paper batch | " +
                  " | ".join(f"{gb} GB: fits / largest batch" for gb in CARDS_GB)]
        for r in result["methods"]:
            cards = r.get("cards", {})
            lines.append(f"{r['method']} | {r['paper_batch']} | " + " | ".join(
                f"{'yes' if c['paper_batch_fits'] else 'no'} / {c['largest_batch'] or '-'}"
                for c in (cards.get(str(gb), {"paper_batch_fits": False, "largest_batch": None}) for gb in CARDS_GB)))
    for r in result["methods"]:
        for part, error in r["errors"].items():
            lines.append(f"FAILED {r['method']} {part}: {error}")
    return "\n".join(lines)


def compare(simulated: dict, measured: dict) -> str:
    """The simulation's peak beside `python -m bench gpu`'s measured one, per method and batch."""
    estimates = {(r["method"], s["batch"]): s.get("peak_memory_gib") for r in simulated["methods"] for s in r["steps"]}
    lines = ["method | batch | simulated GiB | measured GiB | measured / simulated"]
    for r in measured["methods"]:
        for t in r.get("training", []):
            estimate, peak = estimates.get((r["method"], t["batch"])), t.get("peak_memory_gib")
            ratio = f"{peak / estimate:.2f}" if estimate and peak else "-"
            lines.append(f"{r['method']} | {t['batch']} | {_gib(estimate)} | {_gib(peak)} | {ratio}")
    return "\n".join(lines)
