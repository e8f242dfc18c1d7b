"""Facts about the machine a benchmark ran on, stored beside its figures."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"model name\s*:\s*(.+)", text)
    return match.group(1).strip() if match else "unknown"


def machine_facts() -> dict:
    import onnxruntime as ort

    facts = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
             "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
             "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers()}
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        facts["torch"] = None
    return facts


def save(name: str, payload: dict) -> Path:
    """bench/results/<name>.json (the latest run; git history keeps earlier ones)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine_facts()} | payload, indent=2) + "\n")
    return path
