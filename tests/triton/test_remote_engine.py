"""The remote engine against a real tritonserver: the same probabilities as the local engine on the sample clip (gRPC
and HTTP), only frames not encoded before on the network, labels in another order, and the start: a missing model,
not a Triton, a contract that differs (exit 2, one line naming the URL and what differs), a server not there yet."""

import subprocess
import sys

import numpy as np
import pytest

from bench.service_process import ROOT, free_port
from bench.triton_server import TritonServer
from service.analyze import analyze_clip
from service.config import FER_BUNDLE, SAMPLE_CLIP
from service.detect import create_detector
from service.inference import LOCAL, create_engine, engine_status
from service.inference.base import close_engine
from tests.server import wait_for
from tests.triton.conftest import needs_tritonserver


def remote_settings(settings, url: str, **more):
    """The longest deadline allowed: a loaded test machine must not look like a server that went away."""
    return settings.model_copy(update={"engine": url, "engine_deadline_s": 1.5, "engine_health_backoff_s": 0.2,
                                       "engine_health_max_s": 1.0, **more})


@pytest.fixture(scope="module")
def local_report(triton_repository):
    from service.config import Settings

    settings = Settings(_env_file=None, model=FER_BUNDLE)
    return analyze_clip(SAMPLE_CLIP, settings, create_engine(settings), create_detector(settings))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_remote_and_local_give_the_same_probabilities_on_the_sample_clip(protocol, triton_server, settings,
                                                                         local_report):
    port, scheme = ((triton_server.grpc_port, "triton") if protocol == "grpc"
                    else (triton_server.http_port, "triton+http"))
    url = f"{scheme}://127.0.0.1:{port}/fer-mini-xception"
    engine = create_engine(remote_settings(settings, url))
    try:
        before = engine.remote.statistics()
        report = analyze_clip(SAMPLE_CLIP, settings, engine, create_detector(settings))
        after = engine.remote.statistics()
        status = engine_status(engine)
    finally:
        close_engine(engine)
    remote = [e for e in report.events if e.type == "emotion"]
    local = [e for e in local_report.events if e.type == "emotion"]
    assert len(remote) == len(local) > 5
    for r, l in zip(remote, local):
        assert (r.track_id, r.t_end, r.label) == (l.track_id, l.t_end, l.label)
        assert r.raw_probs == pytest.approx(l.raw_probs, abs=1e-4)
        assert r.engine == url and l.engine == LOCAL and r.model == l.model == "fer-mini-xception"
    assert status.status == "remote" and status.windows_local == 0 and status.windows_remote > len(remote)
    # Only frames not encoded before went to the encoder: one encoder inference per distinct frame crop.
    encoded = {name: int(after[name].get("inference_count", 0)) - int(before[name].get("inference_count", 0))
               for name in after}
    windows = status.windows_remote
    assert encoded["fer-mini-xception-window-head"] == windows and encoded["fer-mini-xception"] == 0
    assert 0 < encoded["fer-mini-xception-frame-encoder"] < windows * 16 / 2
    # uint8 pixels of those frames plus 16 x 7 features a window: far less than a float32 window (262 kB).
    assert status.bytes_per_window < 16 * 64 * 64 * 4 / 10


def test_a_model_with_its_labels_in_another_order_gets_the_local_fallbacks_probabilities_in_its_order(
        own_triton_server, settings):
    url = f"triton://127.0.0.1:{own_triton_server.grpc_port}/fer-relabelled"
    engine = create_engine(remote_settings(settings, url))
    try:
        assert engine.labels == engine.local.labels[::-1]
        rng = np.random.default_rng(2)
        from service.windows import Window

        windows = [("cam", Window(1, rng.integers(0, 256, (16, 64, 64, 1), np.uint8), None, 0.0, 1.0,
                                  (0.0, 0.0, 9.0, 9.0), tuple(range(i * 16, i * 16 + 16)))) for i in range(3)]
        remote = engine.predict_routed(windows)
        own_triton_server.kill()
        local = engine.predict_routed(windows)
    finally:
        close_engine(engine)
    assert remote.engine == url and local.engine == LOCAL
    # The same graph either side: the served model calls its output i labels[::-1][i], so in its label order the
    # local engine's probabilities are the remote's reversed.
    np.testing.assert_allclose(local.probs, remote.probs[:, ::-1], atol=1e-5)


def clip_windows(spec, settings, count: int = 6) -> list:
    """The first `count` face windows of the sample clip, made for `spec`'s crops."""
    from service.metrics import StageTimer
    from service.pipeline import ClipFaces, FacePipeline
    from service.track import create_tracker

    faces = ClipFaces(SAMPLE_CLIP, FacePipeline("clip", spec, settings, create_detector(settings),
                                                create_tracker(settings), StageTimer()), settings.sample_fps)
    windows = [("clip", w) for _, result in faces for w in result.windows]
    return windows[:count]


def test_a_fallback_with_other_crops_and_labels_gets_windows_adapted_and_answers_in_the_remote_order(
        own_triton_server, settings):
    """The face-api.js bundle served (112-px RGB, its own label order, a temperature), the embedded 64-px grey model
    as the fallback: on the server the same probabilities as that bundle here (temperature included); locally the
    embedded model's on the adapted windows, in the served model's label order."""
    from service.bundle import ModelBundle
    from service.inference.engine import OnnxEngine
    from service.inference.failover import adapt_window
    from service.config import FER_BUNDLE
    from tests.triton.conftest import FACEAPI_BUNDLE

    url = f"triton://127.0.0.1:{own_triton_server.grpc_port}/faceapi-expression"
    engine = create_engine(remote_settings(settings, url, engine_fallback=FER_BUNDLE))
    try:
        faceapi, fer = OnnxEngine(ModelBundle.load(FACEAPI_BUNDLE)), engine.local
        assert engine.spec == faceapi.spec and faceapi.spec.temperature != 1.0 and engine.labels != fer.labels
        windows = clip_windows(engine.spec, settings)
        assert windows[0][1].faces.shape[1:] == (112, 112, 3)
        remote = engine.predict_routed(windows)
        own_triton_server.kill()
        local = engine.predict_routed(windows)
    finally:
        close_engine(engine)
    assert remote.engine == url and remote.model == "faceapi-expression"
    np.testing.assert_allclose(remote.probs, faceapi.predict_windows(windows), atol=1e-5)
    assert local.engine == LOCAL and local.model == "fer-mini-xception"
    adapted = fer.predict_windows([(s, adapt_window(w, fer.spec)) for s, w in windows])
    np.testing.assert_allclose(local.probs, adapted[:, [fer.labels.index(label) for label in faceapi.labels]],
                               atol=1e-6)


def serve_exit(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "serve", "--no-live", "--engine", url],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("model, port, says", [
    ("fer-wrong-contract", "grpc", "model 'fer-wrong-contract' differs from its contract: input 'faces' is UINT8, "
                                   "the contract needs FP32; input 'faces' has dims [16, 64, 64, 1], the contract "
                                   "needs [16, 1, 64, 64]"),
    ("fer-no-contract", "grpc", "model 'fer-no-contract': its config.pbtxt has no 'emotion_contract' parameter"),
    ("nope", "grpc", "the server has no model 'nope' (it serves: expression-ensemble, expression-ensemble-frame-"),
    ("fer-mini-xception", "http", "not a Triton gRPC server"),
])
def test_a_start_against_the_wrong_server_or_model_ends_with_exit_2_and_one_line(model, port, says, triton_server):
    # gRPC at the HTTP port: something answers there, but not Triton's gRPC service.
    url = f"triton://127.0.0.1:{triton_server.grpc_port if port == 'grpc' else triton_server.http_port}/{model}"
    result = serve_exit(url)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {url}: ") and says in lines[-1], result.stderr
    assert not any("Traceback" in line for line in lines)


def test_an_http_url_at_a_port_that_is_not_kserve_ends_the_start(triton_server):
    url = f"triton+http://127.0.0.1:{triton_server.metrics_port}/fer-mini-xception"  # Triton's Prometheus port
    result = serve_exit(url)
    assert result.returncode == 2 and "not a Triton server" in result.stderr.splitlines()[-1], result.stderr


def test_a_server_not_there_at_start_is_used_once_it_answers(triton_repository, settings, tmp_path):
    needs_tritonserver()
    port = free_port()
    url = f"triton://127.0.0.1:{port}/fer-mini-xception"
    engine = create_engine(remote_settings(settings, url))
    try:
        first = engine_status(engine)
        assert first.status == "fallback" and first.where == LOCAL and "Connection refused" in first.last_error
        with TritonServer(triton_repository, tmp_path / "triton.log", grpc_port=port):
            wait_for(lambda: engine_status(engine).status == "remote", timeout=60)
            status = engine_status(engine)
            assert status.where == url and status.last_error is None and status.switches == 1
            assert status.health_checks >= 1
    finally:
        close_engine(engine)
