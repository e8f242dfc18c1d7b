"""Latency figures, the same way in every benchmark: the median and a nearest-rank 95th percentile."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_summary(times: list[float]) -> dict:
    """{"p50_s", "p95_s", "runs"} of timed calls, in seconds."""
    return {"p50_s": statistics.median(times), "p95_s": percentile(times, 0.95), "runs": len(times)}
