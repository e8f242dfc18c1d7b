"""The websocket event stream of a live file source showing a real face."""

import asyncio
import json
import time

import websockets

from tests.server import get_json


async def collect(url: str, until, timeout: float = 60.0) -> list[dict]:
    events = []
    async with websockets.connect(url) as ws:
        async def read():
            while not until(events):
                events.append(json.loads(await ws.recv()))
        await asyncio.wait_for(read(), timeout)
    return events


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/v1/stream" + query


def test_track_new_then_emotion_with_prompt(live_server):
    events = asyncio.run(collect(ws_url(live_server), lambda ev: any(e["type"] == "emotion" for e in ev)))
    types = [e["type"] for e in events]
    emotion = next(e for e in events if e["type"] == "emotion")
    # A track is announced before its first emotion (it may have been announced before we connected).
    assert "track_new" in types[: types.index("emotion")] or get_json(live_server, "/v1/state")["sources"]["face"]["tracks"]
    assert emotion["source"] == "face" and emotion["label"] == "happy" and emotion["confidence"] > 0.5
    assert "happy" in emotion["prompt"]
    assert [m["role"] for m in emotion["messages"]][:1] == ["system"] and "happy" in json.dumps(emotion["messages"])
    assert emotion["model"] == "expression-ensemble" and len(emotion["box"]) == 4


def test_heartbeats_and_source_filter(live_server):
    events = asyncio.run(collect(ws_url(live_server, "?source=face"),
                                 lambda ev: sum(e["type"] == "heartbeat" for e in ev) >= 2))
    assert all(e["source"] in ("face", "service") for e in events)
    assert sum(e["type"] == "heartbeat" for e in events) >= 2


def test_unknown_source_filter_is_refused(live_server):
    async def connect():
        async with websockets.connect(ws_url(live_server, "?source=nosuch")) as ws:
            await ws.recv()

    try:
        asyncio.run(asyncio.wait_for(connect(), 10))
        raise AssertionError("expected the server to refuse")
    except (websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed) as exc:
        assert "nosuch" in str(exc) or "403" in str(exc) or "1008" in str(exc)


def test_state_shows_the_happy_face(live_server):
    from tests.server import wait_for

    def labelled():
        tracks = get_json(live_server, "/v1/state")["sources"]["face"]["tracks"]
        return [t for t in tracks if t["label"]]

    tracks = wait_for(labelled, timeout=60)
    assert tracks[0]["label"] == "happy"
    state = get_json(live_server, "/v1/state?source=face")
    assert state["sources"]["face"]["alive"] and state["sources"]["face"]["frames_read"] > 0


def test_live_events_carry_raw_and_smoothed_probabilities(live_server):
    events = asyncio.run(collect(ws_url(live_server), lambda ev: sum(e["type"] == "emotion" for e in ev) >= 4))
    emotions = [e for e in events if e["type"] == "emotion"]
    for event in emotions:
        assert set(event["raw_probs"]) == set(event["smoothed_probs"]) == set(event["probs"])
        assert event["probs"] == event["smoothed_probs"]  # compatible: `probs` kept its live meaning
        assert event["confidence"] == event["smoothed_probs"][event["label"]]
    # EMA (the default): after a track's first window the smoothed values are no longer the window's own.
    assert any(e["raw_probs"] != e["smoothed_probs"] for e in emotions)


def test_events_are_numbered_per_source_and_a_reconnecting_client_sees_what_it_missed(live_server):
    """Contract 2's seq: consecutive per source for a client that keeps up; heartbeats carry the last seq of every
    source; the events published while a client was away show up as a gap in client/gaps.py's count."""
    from client.gaps import SequenceGaps

    gaps = SequenceGaps()
    first = asyncio.run(collect(ws_url(live_server), lambda ev: sum(e["type"] == "heartbeat" for e in ev) >= 2))
    for event in first:
        gaps.observe(event)
    by_source: dict[str, list[int]] = {}
    for event in first:
        by_source.setdefault(event["source"], []).append(event["seq"])
    for seqs in by_source.values():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    heartbeat = [e for e in first if e["type"] == "heartbeat"][-1]
    assert heartbeat["last_seq"]["face"] >= max(by_source.get("face", [0])) and "service" not in heartbeat["last_seq"]
    assert gaps.missed == 0

    time.sleep(0.6)  # away for more than two heartbeats (heartbeat_s=0.25)
    second = asyncio.run(collect(ws_url(live_server), lambda ev: sum(e["type"] == "heartbeat" for e in ev) >= 1))
    missed = sum(gaps.observe(event) for event in second)
    assert missed >= 2 and gaps.missed == missed
