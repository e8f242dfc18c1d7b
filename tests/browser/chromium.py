"""Debian's Chromium for the browser tests, driven by playwright's Python package (playwright's own browser download is
never used): where it is, how it starts, and the mark that skips a module without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cache" / "browser"
# A name the browser resolves to 127.0.0.1, as a DNS rebinding page's name would be (test_cross_origin.py).
REBOUND_NAME = "rebound.test"
# As root in a container: no sandbox, no GPU, nothing that phones home; playwright gives a fresh profile directory.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--host-resolver-rules=MAP {REBOUND_NAME} 127.0.0.1"]

requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it with apt-get when run as "
    "root on Debian; elsewhere: apt-get install chromium)")
