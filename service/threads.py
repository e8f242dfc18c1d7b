"""One base for every long-lived thread of the service: capture, face and inference workers, queued sinks, the ROS
publisher, the watchdog and the remote engine's health checks.

The stop semantics, the same for all of them:

- `stop()` only asks: it sets a flag and returns at once, from any thread, any number of times;
- the thread's body looks at `stopping` at least every `POLL_S` (each of its blocking waits is bounded by it, or is
  `pause()`, which stop() cuts short), so it ends within about that long of stop(), except while it is inside one
  call it cannot interrupt (an OpenCV read, a model run): the watchdog tells those apart by their heartbeat;
- `stop_and_join(timeout)` is stop() then join() for at most `timeout`, and says whether the thread ended;
- every one is a daemon: a thread that does not end in time never keeps the process alive at exit;
- a thread that hands on work (a queued sink) finishes what it already holds before it returns: that is its body's
  business, documented where it lives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

POLL_S = 0.5  # the longest a body waits without looking at its stop flag


class StoppableThread(threading.Thread):
    """Subclasses write `run()`; it returns once `stopping` is true (see the module docstring)."""

    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def pause(self, seconds: float) -> bool:
        """Sleep for up to `seconds`, cut short by stop(); True when stopping."""
        return self._stop_event.wait(max(0.0, seconds))

    def stop_and_join(self, timeout: float) -> bool:
        """stop(), then wait up to `timeout` for the thread to end (never for itself); True when it has ended (or
        never started)."""
        self.stop()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        return not self.is_alive()


class PeriodicThread(StoppableThread):
    """Calls `tick()` every `period_s` until stopped. What tick raises is logged and counted (`errors`), never the
    end of the thread."""

    def __init__(self, name: str, period_s: float, tick: Callable[[], None]):
        super().__init__(name)
        self.period_s, self.tick = period_s, tick
        self.errors = 0

    def run(self) -> None:
        while not self.pause(self.period_s):
            try:
                self.tick()
            except Exception:
                self.errors += 1
                log.exception("%s failed; it runs again in %.1f s", self.name, self.period_s)
