import numpy as np
import pytest

from service.bundle import ModelBundle
from service.config import FER_BUNDLE
from service.crops import crop_face
from service.inference import OnnxEngine, choose_providers, normalise, softmax


@pytest.fixture(scope="module")
def engine():
    return OnnxEngine(ModelBundle.load(FER_BUNDLE))


def test_provider_preference_and_cpu_fallback():
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    # Asked for TensorRT on a CPU-only build: dropped (with a warning), the CPU remains.
    assert choose_providers(["TensorrtExecutionProvider"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_normalise_layout_and_values():
    windows = np.zeros((2, 16, 8, 8, 3), np.uint8)
    windows[..., 0] = 255
    x = normalise(windows, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert x.shape == (2, 16, 3, 8, 8) and x.dtype == np.float32
    assert np.all(x[:, :, 0] == 1.0) and np.all(x[:, :, 1] == -1.0)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p, [[1, 0], [0.5, 0.5]])


def test_engine_on_cpu_gives_probabilities(engine):
    assert engine.providers[-1] == "CPUExecutionProvider"
    probs = engine.predict(np.random.default_rng(0).integers(0, 255, (3, 16, 64, 64, 1), dtype=np.uint8))
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_engine_reads_the_smiling_astronaut_as_happy(engine, astronaut_image):
    face = crop_face(astronaut_image, (177, 66, 95, 95), 64, 1)
    probs = engine.predict(np.repeat(face[None, None], 16, axis=1))[0]
    assert engine.labels[int(np.argmax(probs))] == "happy" and probs.max() > 0.9


def test_engine_refuses_a_graph_that_is_not_onnx(tmp_path):
    import shutil

    from service.bundle import file_sha256
    from service.errors import BundleError

    bundle_dir = shutil.copytree(FER_BUNDLE, tmp_path / "b")
    (bundle_dir / "model.onnx").write_bytes(b"garbage")
    spec = ModelBundle.load(bundle_dir, verify_sha256=False).spec.model_copy(
        update={"sha256": file_sha256(bundle_dir / "model.onnx")})
    with pytest.raises(BundleError, match="ONNX Runtime cannot load"):
        OnnxEngine(ModelBundle(bundle_dir, spec))


def test_engine_refuses_split_graphs_with_the_wrong_inputs(tmp_path):
    import shutil

    from service.bundle import file_sha256
    from service.errors import BundleError

    bundle_dir = shutil.copytree(FER_BUNDLE, tmp_path / "b")
    shutil.copy(bundle_dir / "frame_encoder.onnx", bundle_dir / "window_head.onnx")  # a head that wants frames
    spec = ModelBundle.load(bundle_dir, verify_sha256=False).spec
    spec = spec.model_copy(update={"frame_cache": spec.frame_cache.model_copy(
        update={"head_sha256": file_sha256(bundle_dir / "window_head.onnx")})})
    with pytest.raises(BundleError, match=r"window_head.onnx has inputs \['frames'\]"):
        OnnxEngine(ModelBundle(bundle_dir, spec))


def test_tensorrt_options_and_gpu_fallback_warning():
    from service.inference.engine import gpu_fallback_warning, provider_options

    options = dict(provider_options(["TensorrtExecutionProvider", "CPUExecutionProvider"], "/cache/trt", True))
    assert options["TensorrtExecutionProvider"]["trt_engine_cache_path"] == "/cache/trt"
    assert options["TensorrtExecutionProvider"]["trt_fp16_enable"] is True and options["CPUExecutionProvider"] == {}
    assert provider_options(["TensorrtExecutionProvider"], None, False) == [
        ("TensorrtExecutionProvider", {"trt_fp16_enable": False})]
    warning = gpu_fallback_warning(["CUDAExecutionProvider"], ["CPUExecutionProvider"])
    assert "CUDAExecutionProvider" in warning and "onnxruntime-gpu" in warning
    assert gpu_fallback_warning(["CUDAExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    assert gpu_fallback_warning(None, ["CPUExecutionProvider"]) is None


def test_asking_for_cuda_on_a_cpu_build_warns_loudly_and_runs(caplog):
    with caplog.at_level("WARNING"):
        engine = OnnxEngine(ModelBundle.load(FER_BUNDLE), providers=["CUDAExecutionProvider"])
    assert engine.providers == ["CPUExecutionProvider"]
    assert any("!!!" in r.message and "runs on CPUExecutionProvider" in r.message for r in caplog.records)


def test_graph_whose_shape_differs_from_bundle_json_is_refused(tmp_path):
    import shutil

    from service.errors import BundleError

    bundle_dir = shutil.copytree(FER_BUNDLE, tmp_path / "b")
    spec = ModelBundle.load(bundle_dir).spec
    wrong = spec.model_copy(update={"image_size": 48, "inputs": [spec.inputs[0].model_copy(
        update={"shape": ["batch", 16, 1, 48, 48]})]})
    with pytest.raises(BundleError, match="shape"):
        OnnxEngine(ModelBundle(bundle_dir, wrong))


def test_frames_shared_by_overlapping_windows_are_encoded_once(engine):
    from service.inference import FrameFeatureCache
    from service.windows import WindowBuffer

    assert engine.spec.frame_cache is not None and engine.encoder is not None
    rng = np.random.default_rng(3)
    buffer = WindowBuffer(track_id=1, num_frames=16, hop=4)
    windows = [w for i in range(40)
               if (w := buffer.push(rng.integers(0, 255, (64, 64, 1), dtype=np.uint8), i / 8, (0, 0, 1, 1)))]
    assert len(windows) == 7  # frames 0-15, then every 4 frames: 40 frames, 7 overlapping windows
    cache = FrameFeatureCache()
    cached = np.concatenate([engine.predict_windows([("cam", w)], cache) for w in windows])
    whole = engine.predict(np.stack([w.faces for w in windows]))
    assert np.abs(cached - whole).max() < 1e-5  # the split graphs are the same model
    assert cache.encoded == 40 and cache.reused == 7 * 16 - 40  # each frame encoded once
    # Another source's frames with the same numbers are different frames.
    engine.predict_windows([("other", windows[0])], cache)
    assert cache.encoded == 56


def test_frame_cache_is_bounded():
    from service.inference import FrameFeatureCache

    cache = FrameFeatureCache(capacity=3)
    for i in range(5):
        cache.put(("s", 1, i), np.zeros(2))
    assert len(cache) == 3 and cache.get(("s", 1, 0)) is None and cache.get(("s", 1, 4)) is not None
