"""The event bus: workers publish from their threads; websocket subscribers and sinks (JSONL log, LLM forwarder)
consume. A subscriber more than subscriber_queue events behind loses its oldest events (counted in dropped_total);
it never slows the pipeline. (A websocket client that stops reading altogether is disconnected by the server's ping
timeout, usually before it is that far behind: see routes/stream.py.)

Every published event gets `seq`, one more than the previous event of its source (heartbeats count in the source
"service"), and every heartbeat carries `last_seq`, the last seq published per source. Numbering and handing over
happen under one lock, so each subscriber receives a source's events in seq order: a jump, or a heartbeat's
last_seq above the last seq received, means events were lost (dropped for a slow client, or sent while it was
disconnected)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, source: str | None, maxsize: int):
        self.source = source
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)
        self.dropped = 0

    def wants(self, event) -> bool:
        # Heartbeats concern every subscriber; other events only those of the chosen source.
        return self.source is None or event.type == "heartbeat" or event.source == self.source


class EventBus:
    def __init__(self, subscriber_queue: int = 256):
        self.subscriber_queue = subscriber_queue
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._sinks: list[Callable[[object], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0
        self._last_seq: dict[str, int] = {}  # per source
        self.dropped_total = 0  # events lost by slow subscribers, over all of them
        self.sink_errors = 0

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add_sink(self, sink: Callable[[object], None]) -> None:
        """A sink is called in the publishing thread: it must be quick and must not raise (errors are counted); one
        that writes or sends goes behind a service.live.sinks.QueuedSink."""
        self._sinks.append(sink)

    def subscribe(self, source: str | None = None) -> Subscription:
        sub = Subscription(source, self.subscriber_queue)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def last_seq(self) -> dict[str, int]:
        with self._publish_lock:
            return dict(self._last_seq)

    def publish(self, event) -> None:
        with self._publish_lock:  # numbering and hand-over in one order, whichever thread publishes
            event = self._numbered(event)
            self.published += 1
            for sink in self._sinks:
                try:
                    sink(event)
                except Exception:  # a broken sink must not take the pipeline down
                    self.sink_errors += 1
                    log.exception("event sink %r failed", sink)
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            with self._lock:
                subs = [s for s in self._subs if s.wants(event)]
            for sub in subs:
                try:
                    loop.call_soon_threadsafe(self._deliver, sub, event)
                except RuntimeError:  # loop closed during shutdown
                    return

    def _numbered(self, event):
        seq = self._last_seq.get(event.source, 0) + 1
        update = {"seq": seq}
        if event.type == "heartbeat":
            update["last_seq"] = {source: n for source, n in self._last_seq.items() if source != event.source}
        self._last_seq[event.source] = seq
        return event.model_copy(update=update)

    def _deliver(self, sub: Subscription, event) -> None:
        if sub.queue.full():
            sub.queue.get_nowait()
            sub.dropped += 1
            self.dropped_total += 1
        sub.queue.put_nowait(event)

