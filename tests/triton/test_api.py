"""The service with its windows on a real tritonserver: where windows run in GET /v1/state, /v1/models and /metrics,
and the `engine` of every emotion event, live (websocket) and in a clip report; after the server is killed, the same
say local."""

import json

import httpx
from websockets.sync.client import connect

from service.api import create_app
from service.config import SAMPLE_CLIP
from tests.server import get_json, running_server, wait_for
from tests.triton.test_remote_engine import remote_settings


def emotion_engines(base: str, count: int) -> list[str]:
    engines = []
    with connect(base.replace("http", "ws") + "/v1/stream") as ws:
        while len(engines) < count:
            event = json.loads(ws.recv(timeout=60))
            if event["type"] == "emotion":
                engines.append(event["engine"])
    return engines


def test_state_metrics_and_events_name_the_engine(own_triton_server, settings):
    url = f"triton://127.0.0.1:{own_triton_server.grpc_port}/fer-mini-xception"
    app = create_app(remote_settings(settings, url), sources=[f"cam={SAMPLE_CLIP}"])
    with running_server(app) as base:
        state = get_json(base, "/v1/state")["engine"]
        assert state == state | {"where": url, "status": "remote", "remote": url, "model": "fer-mini-xception",
                                 "fallback_model": "fer-mini-xception", "last_error": None}, state
        assert get_json(base, "/v1/models")["engine"] == url
        assert set(emotion_engines(base, 2)) == {url}
        with open(SAMPLE_CLIP, "rb") as clip:
            report = httpx.post(base + "/v1/clips", files={"file": ("a.mp4", clip, "video/mp4")}, timeout=120).json()
        assert {e["engine"] for e in report["events"] if e["type"] == "emotion"} == {url}
        metrics = httpx.get(base + "/metrics").text
        assert f'emotion_engine_remote_up{{remote="{url}"}} 1.0' in metrics
        assert f'emotion_engine_windows_total{{engine="{url}"}}' in metrics

        own_triton_server.kill()
        wait_for(lambda: get_json(base, "/v1/state")["engine"]["status"] == "fallback", timeout=60)
        away = get_json(base, "/v1/state")["engine"]
        assert away["where"] == "local" and away["remote"] == url and away["last_error"].startswith(url), away
        assert set(emotion_engines(base, 2)) == {"local"}
        metrics = httpx.get(base + "/metrics").text
        assert f'emotion_engine_remote_up{{remote="{url}"}} 0.0' in metrics
        assert "emotion_engine_switches_total 1.0" in metrics, away
        assert get_json(base, "/v1/models")["engine"] == "local"


def test_a_local_engine_says_so(settings):
    app = create_app(settings, live=False)
    with running_server(app) as base:
        assert get_json(base, "/v1/state")["engine"] == {
            "where": "local", "status": "local", "model": "fer-mini-xception", "remote": None, "last_error": None,
            "fallback_model": None, "switches": 0, "windows_remote": 0, "windows_local": 0, "remote_bytes_sent": 0,
            "remote_bytes_received": 0, "bytes_per_window": None, "health_checks": 0, "next_check_s": None}
        assert "emotion_engine_remote_up" not in httpx.get(base + "/metrics").text
