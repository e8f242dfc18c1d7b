"""Event sinks off the publishing threads. The inference worker publishes every event; a sink that writes a file or
talks to a server must not make it wait, so each such sink gets a thread of its own behind a bounded queue: when
the sink falls `maxsize` events behind, the oldest waiting event is dropped and counted (in /metrics). What a sink
raises is logged and counted, never passed back.

`JsonlLog` is the event log: one JSON object per line, the file kept open, and rotated by size (PATH -> PATH.1 ->
PATH.2 ..., the oldest beyond `backups` deleted) so a robot that runs for months does not fill its disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from service.ingest.queues import BoundedQueue
from service.threads import POLL_S, StoppableThread

log = logging.getLogger(__name__)


class QueuedSink:
    """Calls `handle(event)` for every event, in its own thread; calling the sink only queues the event. Stopping
    follows service/threads.py, and the thread handles what is already queued before it returns."""

    def __init__(self, name: str, handle: Callable[[object], None], maxsize: int,
                 on_stop: Callable[[], None] | None = None):
        self.name, self.handle, self.on_stop = name, handle, on_stop
        self._queue: BoundedQueue[object] = BoundedQueue(maxsize)
        self._thread = _SinkThread(self)
        self.handled = 0
        self.errors = 0

    def __call__(self, event) -> None:
        """Never waits: a full queue loses its oldest event (counted)."""
        self._queue.put(event)

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Handle what is already queued (for up to `timeout`), then stop and call `on_stop`."""
        self._thread.stop_and_join(timeout)
        if self.on_stop is not None:
            self.on_stop()

    def drain(self, thread: StoppableThread) -> None:
        """The sink thread's body: every queued event handed to `handle`, until stopped with nothing left."""
        while True:
            event = self._queue.get(timeout=POLL_S)
            if event is None:
                if thread.stopping:
                    return
                continue
            try:
                self.handle(event)
                self.handled += 1
            except Exception:  # a broken sink must not stop the others, nor its own next events
                self.errors += 1
                log.exception("event sink %s failed", self.name)


class _SinkThread(StoppableThread):
    def __init__(self, sink: QueuedSink):
        super().__init__(f"sink-{sink.name}")
        self.sink = sink

    def run(self) -> None:
        self.sink.drain(self)


class JsonlLog:
    """Appends each event to a JSON Lines file kept open; past `max_bytes` the file is rotated. Used from one
    thread (its QueuedSink's)."""

    def __init__(self, path: Path, max_bytes: int, backups: int):
        self.path, self.max_bytes, self.backups = Path(path), max_bytes, backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self.rotations = 0

    def write(self, event: BaseModel) -> None:
        self._file.write(event.model_dump_json() + "\n")
        self._file.flush()  # a reader (tail -f, a log shipper) sees each event as it happens
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        if self.backups > 0:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self.rotations += 1
