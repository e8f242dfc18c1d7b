"""`python -m bench [pipeline] [faces] [detectors] [phantoms] [models] [cheaper] ...`: run benchmarks, print their figures, save bench/results/*.json.
`python -m bench versus_fer`: `analyze` against the fer package (bench/versus_fer.py; `make fer-venv` first), only when named.
`python -m bench faults [--groups inputs live lifecycle budgets]`: the reliability suite (bench/faults.py), only when named.
`python -m bench gpu [--device cuda|cpu] [--tiny] [--out FILE]`: the GPU acceptance run (bench/gpu.py), only when named.
`python -m bench gpu --simulate [--tiny] [--out FILE]`: the GPU training path on simulated CUDA (bench/gpu_simulate.py);
with `--compare GPU_JSON`, its estimates (--out, default today's) beside a GPU run's measured peaks."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

SUITES = ("pipeline", "faces", "detectors", "phantoms", "regions", "models", "cheaper", "responsiveness", "live_cpu",
          "fleet", "people")
NAMED_ONLY = ("versus_fer",)  # needs fer and TensorFlow in their own environment (`make fer-venv`)
GPU = "gpu"  # not in the default run: it is the one command for a borrowed GPU machine, alone
FAULTS = "faults"  # not in the default run either: `python -m bench faults [--groups ...]` (bench/faults.py)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [FAULTS]:  # the reliability suite has its own options (bench/faults.py)
        from bench import faults

        return faults.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)}; default: all")
    parser.add_argument("--methods", nargs="+", help="models, gpu: these methods only (default: all)")
    parser.add_argument("--backbones", nargs="+", help="models suite: these backbones only (tiny, ViT-B-32, ViT-B-16)")
    parser.add_argument("--batches", nargs="+", type=int, help="models suite: batch sizes for every backbone "
                        "(default: 1/4/16 tiny, 1/4 ViT-B-32, 1 ViT-B-16)")
    parser.add_argument("--repeats", type=int, default=3, help="models, cheaper: timed runs per measurement")
    parser.add_argument("--sizes", nargs="+", type=int, help="cheaper suite: input sizes (default: full, ~5/7, 1/2)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="gpu: where to run (default cuda)")
    parser.add_argument("--tiny", action="store_true", help="gpu: tiny configurations, batch 2 (a CPU check)")
    parser.add_argument("--out", type=Path, help="gpu: the JSON to write (default bench/results/gpu-<date>.json, "
                        "with --simulate gpu-simulated-<date>.json)")
    parser.add_argument("--simulate", action="store_true", help="gpu: simulated CUDA, no GPU needed "
                        "(bench/gpu_simulate.py); exits 1 when a method fails")
    parser.add_argument("--compare", type=Path, metavar="GPU_JSON", help="gpu --simulate: print the estimates in "
                        "--out beside the peaks measured in GPU_JSON (a `python -m bench gpu` result) instead")
    args = parser.parse_args(argv)
    if GPU in args.suites:
        if args.suites != [GPU]:
            parser.error("gpu runs alone: python -m bench gpu [--device cuda|cpu] [--tiny] [--out FILE]")
        return run_gpu(args)
    unknown = [s for s in args.suites if s not in SUITES + NAMED_ONLY]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES + NAMED_ONLY)}")
    logging.basicConfig(level=logging.WARNING)
    from bench.machine import machine_facts, save

    facts = machine_facts()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores, GPU {facts.get('gpu')}, onnxruntime "
          f"{facts['onnxruntime']}, {facts['date']}")
    for name in args.suites or SUITES:
        suite = importlib.import_module(f"bench.{name}")
        if name == "models":
            backbones = args.backbones or list(suite.DEFAULT_PLAN)
            plan = {b: tuple(args.batches) if args.batches else suite.DEFAULT_PLAN.get(b, (1,)) for b in backbones}
            result = suite.run(args.methods, plan, args.repeats)
        elif name == "cheaper":
            backbone = (args.backbones or [suite.DEFAULT_BACKBONE])[0]
            result = suite.run(args.methods, backbone, args.sizes, args.repeats)
        else:
            result = suite.run()
        print(suite.describe(result))
        # A partial models run (some backbones) is saved beside the others, not over them.
        label = (f"{name}-{'-'.join(args.backbones)}" + (f"-b{'-'.join(map(str, args.batches))}" if args.batches else "")
                 if name == "models" and args.backbones else
                 f"{name}-{result['backbone']}" if name == "cheaper" else name)
        print(f"  -> {save(label, result)}")
    return 0


def run_gpu(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    if args.simulate or args.compare:
        return run_simulation(args)
    from bench import gpu

    result = gpu.run(args.device, args.tiny, args.out, args.methods)
    print(gpu.describe(result))
    print(f"  -> {result['out']}")
    return 0


def run_simulation(args: argparse.Namespace) -> int:
    import json

    from bench import gpu_simulate

    if args.compare:
        simulated = args.out or gpu_simulate.default_out(args.tiny)
        print(gpu_simulate.compare(json.loads(simulated.read_text()), json.loads(args.compare.read_text())))
        return 0
    result = gpu_simulate.run(args.tiny, args.out, args.methods)
    print(gpu_simulate.describe(result))
    print(f"  -> {result['out']}")
    return 0 if all(r["ok"] for r in result["methods"]) else 1


if __name__ == "__main__":
    sys.exit(main())
