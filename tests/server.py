"""A real uvicorn server for API tests (bench/serving.py), and polling helpers."""

from __future__ import annotations

import httpx

from bench.serving import running_server
from bench.service_process import wait_until

__all__ = ["running_server", "wait_for", "get_json"]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll until predicate() is truthy; return its value, or fail after timeout (tests must stop by themselves)."""
    return wait_until(predicate, timeout, interval)


def get_json(base: str, path: str, **kwargs):
    return httpx.get(base + path, timeout=30, **kwargs).json()
