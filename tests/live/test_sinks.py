"""Sinks off the publishing thread: a slow sink loses its oldest events (counted) instead of stalling the publisher,
a failing one is counted, and the JSONL event log keeps its file open and rotates by size."""

import json
import threading

from service.events import HeartbeatEvent
from service.live.sinks import JsonlLog, QueuedSink


def heartbeat(t: float) -> HeartbeatEvent:
    return HeartbeatEvent(source="service", t=t)


def test_a_stuck_sink_drops_its_oldest_events_and_never_blocks_the_publisher():
    release, handled = threading.Event(), []

    def slow(event) -> None:
        release.wait()
        handled.append(event.t)

    sink = QueuedSink("slow", slow, maxsize=2)
    sink.start()
    sink(heartbeat(0))
    while sink._queue:  # the thread has taken event 0 and is stuck in it
        pass
    for t in (1, 2, 3, 4):
        sink(heartbeat(t))  # returns at once although the sink is stuck
    assert sink.dropped == 2
    release.set()
    sink.stop()
    assert handled == [0, 3, 4] and sink.handled == 3


def test_a_failing_sink_is_counted_and_keeps_going():
    seen = []

    def flaky(event) -> None:
        seen.append(event.t)
        if event.t == 1:
            raise OSError("disk full")

    sink = QueuedSink("flaky", flaky, maxsize=8)
    sink.start()
    for t in (0, 1, 2):
        sink(heartbeat(t))
    sink.stop()
    assert seen == [0, 1, 2] and sink.errors == 1 and sink.handled == 2


def test_the_event_log_rotates_by_size_and_keeps_backups(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    line = len(heartbeat(0.0).model_dump_json()) + 1
    log = JsonlLog(path, max_bytes=3 * line, backups=2)
    for t in range(10):
        log.write(heartbeat(float(t)))
    log.close()
    times = {p.name: [json.loads(x)["t"] for x in p.read_text().splitlines()] for p in sorted(path.parent.iterdir())}
    # Rotated after every third event: .2 and .1 hold the two newest full files, the oldest (0-2) is gone.
    assert times == {"events.jsonl": [9.0], "events.jsonl.1": [6.0, 7.0, 8.0], "events.jsonl.2": [3.0, 4.0, 5.0]}
    assert log.rotations == 3
