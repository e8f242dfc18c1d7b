"""A live source that disappears and comes back is reopened; a slow websocket client loses events but does not
stall the others."""

import asyncio
import json
import os
import shutil

import httpx
import websockets

from bench.service_process import never_reading_websocket
from service.api import create_app
from service.config import Settings
from tests.server import get_json, running_server, wait_for


def test_a_source_that_fails_and_comes_back_is_reopened(astronaut_clip, tmp_path):
    clip = shutil.copy(astronaut_clip, tmp_path / "door.mp4")
    settings = Settings(_env_file=None, reconnect_backoff_s=0.1, reconnect_max_s=0.3, heartbeat_s=1)
    with running_server(create_app(settings, sources=[f"door={clip}"])) as base:
        source = lambda: get_json(base, "/v1/state")["sources"]["door"]  # noqa: E731
        wait_for(lambda: source()["status"] == "open" and source()["frames_read"] > 0)
        os.rename(clip, tmp_path / "away.mp4")  # the file plays to its end, then cannot be reopened
        gone = wait_for(lambda: (s := source())["status"] == "reconnecting" and s, timeout=30)
        assert "cannot open" in gone["last_error"]
        assert httpx.get(base + "/readyz").status_code == 503  # not ready while a source is down
        os.rename(tmp_path / "away.mp4", clip)
        back = wait_for(lambda: (s := source())["status"] == "open" and s["frames_read"] > gone["frames_read"] and s,
                        timeout=30)
        assert back["reconnects"] >= 1 and back["last_error"] is None  # recovered: the old error is history
        assert httpx.get(base + "/healthz").status_code == 200


def test_a_slow_websocket_client_loses_events_and_does_not_stall_others(astronaut_clip):
    # Frequent heartbeats and a small per-client queue make the slow client fall behind within seconds.
    settings = Settings(_env_file=None, heartbeat_s=0.002, subscriber_queue=8)
    with running_server(create_app(settings, sources=[f"face={astronaut_clip}"]), send_buffer=4096) as base:
        slow = never_reading_websocket(base)
        try:
            def dropped():
                text = httpx.get(base + "/metrics").text
                line = next(l for l in text.splitlines() if l.startswith("emotion_websocket_events_dropped_total"))
                return float(line.split()[-1]) > 0

            async def fast_client() -> list[dict]:
                events = []
                async with websockets.connect(base.replace("http", "ws") + "/v1/stream") as ws:
                    while len(events) < 200:
                        events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                return events

            wait_for(dropped, timeout=60)
            events = asyncio.run(fast_client())
            assert len(events) == 200 and {e["type"] for e in events} >= {"heartbeat"}
            # The pipeline kept going while the slow client was stuck.
            state = get_json(base, "/v1/state")
            assert state["sources"]["face"]["frames_read"] > 0 and state["events_published"] > 200
        finally:
            slow.close()


def test_a_client_that_never_reads_is_disconnected_and_counted(astronaut_clip):
    """It never answers a ping either: the server closes it after ws_ping_interval + ws_ping_timeout, and /metrics
    says so (disconnects by reason, events it never got), as docs/API.md does."""
    settings = Settings(_env_file=None, heartbeat_s=0.05)
    app = create_app(settings, sources=[f"face={astronaut_clip}"])
    with running_server(app, ws_ping_interval=0.2, ws_ping_timeout=0.2) as base:
        silent = never_reading_websocket(base)
        try:
            def lost() -> float:
                text = httpx.get(base + "/metrics").text
                line = next((l for l in text.splitlines()
                             if l.startswith('emotion_websocket_disconnects_total{reason="lost"}')), None)
                return line is not None and float(line.split()[-1]) >= 1

            wait_for(lost, timeout=30)
            assert get_json(base, "/v1/state")["subscribers"] == 0
            assert "emotion_websocket_events_undelivered_total" in httpx.get(base + "/metrics").text
        finally:
            silent.close()
