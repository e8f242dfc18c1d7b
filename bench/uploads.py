"""Latency of concurrent clip uploads: N clients post the same clip at once to a clips-only server (in this
process, on a free loopback port, default settings) and wait for their reports; prints p50/p95/max and the status
codes as JSON.

    python bench/uploads.py [--clients 10] [--clip PATH]

Run as a script, so that `PYTHONPATH=/other/checkout` measures another version of the service (e.g. before a
change) with the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from datetime import datetime, timezone

import httpx
import numpy as np

# Run as a script (see above): its sibling in this checkout, whichever service PYTHONPATH points at.
from serving import running_server


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    import service
    from service.api import create_app
    from service.config import SAMPLE_CLIP, Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--clip", default=str(SAMPLE_CLIP))
    args = parser.parse_args()
    data = open(args.clip, "rb").read()
    settings = Settings(_env_file=None)
    with running_server(create_app(settings, live=False)) as base:
        def post() -> tuple[float, int]:
            started = time.perf_counter()
            response = httpx.post(base + "/v1/clips", files={"file": ("clip.mp4", data, "video/mp4")}, timeout=1800)
            return time.perf_counter() - started, response.status_code

        warm_up = post()  # ONNX Runtime's and the detector's first-call set-up does not count
        barrier, results = threading.Barrier(args.clients), []

        def client() -> None:
            barrier.wait()
            results.append(post())

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seconds = sorted(s for s, _ in results)
    print(json.dumps({
        "service": os.path.dirname(service.__file__), "clip": args.clip, "clip_bytes": len(data),
        "clients": args.clients, "clip_workers": settings.clip_workers, "warm_up_s": round(warm_up[0], 2),
        "status": sorted(code for _, code in results), "p50_s": round(float(np.percentile(seconds, 50)), 2),
        "p95_s": round(float(np.percentile(seconds, 95)), 2), "max_s": round(seconds[-1], 2),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs",
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
    }))


if __name__ == "__main__":
    main()
