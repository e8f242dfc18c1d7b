import asyncio
import json

import pytest

from service.events import HeartbeatEvent, TrackEvent
from service.ingest.queues import BoundedQueue, FullPolicy
from service.live.bus import EventBus


def test_drop_oldest_keeps_the_newest_and_counts():
    q = BoundedQueue(2, FullPolicy.DROP_OLDEST)
    assert q.put(1) and q.put(2)
    assert q.put(3) is False  # had to drop
    assert q.dropped == 1 and len(q) == 2
    assert [q.get(0), q.get(0), q.get(0)] == [2, 3, None]


def test_drain_and_policy_from_string():
    q = BoundedQueue(5, "drop_oldest")
    assert q.policy is FullPolicy.DROP_OLDEST
    for i in range(4):
        q.put(i)
    assert q.drain(3) == [0, 1, 2] and q.drain(3) == [3] and q.drain(3) == []
    with pytest.raises(ValueError):
        BoundedQueue(0)
    with pytest.raises(ValueError):
        BoundedQueue(1, "sometimes")


def event(i, source="cam"):
    return TrackEvent(source=source, type="track_new", track_id=i, t=float(i), box=(0, 0, 1, 1))


def test_bus_delivers_filters_and_drops_for_a_slow_subscriber_only():
    async def scenario():
        bus = EventBus(subscriber_queue=4)
        bus.attach_loop(asyncio.get_running_loop())
        fast, slow, other = bus.subscribe(), bus.subscribe(), bus.subscribe("elsewhere")
        received = []

        async def consume():
            while len(received) < 50:
                received.append(await fast.queue.get())

        consumer = asyncio.create_task(consume())
        for i in range(50):
            bus.publish(event(i))  # publish never blocks, whoever lags
            await asyncio.sleep(0)
        bus.publish(HeartbeatEvent(source="service", t=1.0))
        await asyncio.wait_for(consumer, 5)
        await asyncio.sleep(0.01)
        return bus, received, slow, other

    bus, received, slow, other = asyncio.run(scenario())
    assert [e.track_id for e in received] == list(range(50))
    assert slow.dropped == 47 and slow.queue.qsize() == 4  # kept the newest 4 (3 events and the heartbeat)
    assert other.queue.qsize() == 1 and other.queue.get_nowait().type == "heartbeat"  # filter: heartbeat only
    assert bus.dropped_total == 47 and bus.published == 51


def test_a_failing_sink_is_counted_not_raised():
    bus = EventBus()
    seen = []
    bus.add_sink(lambda e: 1 / 0)
    bus.add_sink(seen.append)
    bus.publish(event(1))  # no loop attached, no subscribers: sinks still run
    assert bus.sink_errors == 1 and len(seen) == 1


def test_every_event_is_numbered_per_source_and_heartbeats_carry_the_last_numbers():
    """seq counts one source's events (heartbeats: the service's); a slow subscriber sees the jump where its oldest
    events were dropped, and the heartbeat's last_seq tells any subscriber what it should have had."""
    async def scenario():
        bus = EventBus(subscriber_queue=3)
        bus.attach_loop(asyncio.get_running_loop())
        everything, slow = bus.subscribe(), bus.subscribe("cam")
        received = []
        for i in range(4):
            bus.publish(event(i, "cam"))
            bus.publish(event(i, "door"))
            received.extend([await everything.queue.get(), await everything.queue.get()])
        bus.publish(HeartbeatEvent(source="service", t=1.0))
        received.append(await everything.queue.get())
        await asyncio.sleep(0.01)
        return bus, received, [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]

    bus, received, slow = asyncio.run(scenario())
    assert [(e.source, e.seq) for e in received[:4]] == [("cam", 1), ("door", 1), ("cam", 2), ("door", 2)]
    heartbeat = received[-1]
    assert heartbeat.seq == 1 and heartbeat.last_seq == {"cam": 4, "door": 4}
    assert [e.seq for e in slow] == [3, 4, 1]  # cam 1 and 2 dropped: the jump from nothing to 3 ...
    assert slow[-1].last_seq["cam"] == 4 and bus.last_seq() == {"cam": 4, "door": 4, "service": 1}
    assert json.loads(heartbeat.model_dump_json())["last_seq"] == {"cam": 4, "door": 4}
