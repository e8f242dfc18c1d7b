import httpx

from tests.server import get_json, wait_for


def test_healthz(live_server):
    assert get_json(live_server, "/healthz") == {"status": "ok"}


def test_readyz_reports_model_and_sources(live_server):
    body = wait_for(lambda: (r := httpx.get(live_server + "/readyz")).status_code == 200 and r.json())
    spool = body.pop("spool")
    assert body == {"ready": True, "model": "expression-ensemble", "sources": {"face": True}}
    assert spool["ok"] and spool["free_mb"] >= spool["needed_mb"] == 1.0  # room for one max_upload_mb upload


def test_models(live_server):
    body = get_json(live_server, "/v1/models")
    assert body["active"] == "expression-ensemble" and body["providers"][-1] == "CPUExecutionProvider"
    assert body["models"][0]["labels"][3] == "happy" and body["models"][0]["method"] == "baseline"


def test_metrics_exposes_stage_latency_fps_drops_and_clients(live_server):
    def scraped():
        text = httpx.get(live_server + "/metrics").text
        return 'emotion_stage_seconds_count{stage="infer"}' in text and text

    text = wait_for(scraped, timeout=60)
    for name in ('emotion_stage_seconds_bucket{le="0.1",stage="detect"}', 'emotion_source_fps{source="face"}',
                 'emotion_frames_dropped_total{source="face"}', 'emotion_label_changes_total{source="face"}',
                 "emotion_frame_queue_depth",
                 "emotion_inference_batch_size_bucket", "emotion_websocket_clients", "emotion_window_queue_depth",
                 "emotion_websocket_events_dropped_total", 'emotion_sink_errors_total{sink="bus"}',
                 'emotion_detector_searches_total{kind="whole",source="face"}',
                 'emotion_detector_searches_total{kind="region",source="face"}'):
        assert name in text, name


def test_openapi_documents_the_api(live_server):
    spec = get_json(live_server, "/openapi.json")
    assert {"/v1/clips", "/v1/clips/{job_id}", "/v1/state", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/clips"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"]


def test_metrics_measure_frame_to_event_latency_and_http_requests(live_server):
    def observed():
        text = httpx.get(live_server + "/metrics").text
        line = next((l for l in text.splitlines() if l.startswith("emotion_frame_to_event_seconds_count")), None)
        return line is not None and float(line.split()[-1]) > 0 and text

    text = wait_for(observed, timeout=60)
    assert 'emotion_frame_to_event_seconds_bucket{le="30.0"}' in text
    assert 'emotion_http_requests_total{method="GET",route="/metrics",status="200"}' in text


def test_state_has_a_typed_response_model(live_server):
    from service.api import create_app
    from service.config import Settings
    from service.state import RuntimeStatus

    schema = create_app(Settings(_env_file=None), live=False).openapi()
    ok = schema["paths"]["/v1/state"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/RuntimeStatus") and "SourceStatus" in schema["components"]["schemas"]
    state = RuntimeStatus.model_validate(get_json(live_server, "/v1/state"))  # the answer is what it says
    assert state.sources["face"].kind == "file"
