"""Watchdog: restarts a capture that died or stalled and a worker that died or hangs, with reasons, spacing
between restarts of the same component, and counts (as Frigate's CameraWatchdog does)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from service.threads import StoppableThread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What the watchdog needs to know of a component (all times on the service clock)."""

    alive: bool  # thread running
    last_progress: float | None  # last frame read / last heartbeat
    busy_since: float | None = None  # started an item and not finished it


def restart_reason(health: Health, now: float, stall_s: float) -> str | None:
    """Why a component should be restarted, or None (pure)."""
    if not health.alive:
        return "thread died"
    if health.busy_since is not None and now - health.busy_since > stall_s:
        return f"stuck on one item for {now - health.busy_since:.0f} s"
    if health.last_progress is not None and now - health.last_progress > stall_s:
        return f"no progress for {now - health.last_progress:.0f} s"
    return None


@dataclass
class Watched:
    name: str
    health: Callable[[], Health]
    restart: Callable[[], None]
    last_restart: float | None = None
    restarts: int = 0


class Watchdog(StoppableThread):
    def __init__(self, clock: Callable[[], float], stall_s: float = 20.0, interval_s: float = 2.0,
                 retry_interval_s: float = 10.0):
        super().__init__("watchdog")
        self.clock, self.stall_s, self.interval_s, self.retry_interval_s = clock, stall_s, interval_s, retry_interval_s
        self._watched: list[Watched] = []
        self.restarts: dict[str, int] = {}
        self.last_reasons: dict[str, str] = {}

    def watch(self, name: str, health: Callable[[], Health], restart: Callable[[], None]) -> None:
        self._watched.append(Watched(name, health, restart))

    def run(self) -> None:
        while not self.pause(self.interval_s):
            self.check()

    def check(self) -> None:
        now = self.clock()
        for item in self._watched:
            reason = restart_reason(item.health(), now, self.stall_s)
            if reason is None:
                continue
            if self.stopping:
                return  # stopping: what stopped meanwhile did not die
            if item.last_restart is not None and now - item.last_restart < self.retry_interval_s:
                continue  # give the last restart time to take effect
            log.warning("watchdog: restarting %s (%s)", item.name, reason)
            item.last_restart = now
            item.restarts += 1
            self.restarts[item.name] = item.restarts
            self.last_reasons[item.name] = reason
            try:
                item.restart()
            except Exception:
                log.exception("watchdog: restarting %s failed", item.name)
