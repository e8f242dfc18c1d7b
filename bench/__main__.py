"""`python -m bench [pipeline] [faces] ...`: run benchmarks, print their figures, save bench/results/*.json."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUITES = ("pipeline", "faces")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)}; default: all")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    logging.basicConfig(level=logging.WARNING)
    from bench.machine import machine_facts, save

    facts = machine_facts()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores, GPU {facts.get('gpu')}, onnxruntime "
          f"{facts['onnxruntime']}, {facts['date']}")
    for name in args.suites or SUITES:
        suite = importlib.import_module(f"bench.{name}")
        result = suite.run()
        print(suite.describe(result))
        print(f"  -> {save(name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
