"""`python -m export CHECKPOINT`: trained checkpoints of each method (tiny configs) to bundles the service runs."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.from_checkpoint import export_checkpoint  # noqa: E402
from models import create_model, list_models  # noqa: E402
from models.checkpoint import CheckpointError, load_model, save_checkpoint  # noqa: E402
from service.bundle import ModelBundle  # noqa: E402
from service.config import SAMPLE_CLIP  # noqa: E402
from service.inference import OnnxEngine  # noqa: E402

TRAINING = {"dataset": "dfew", "fold": 1, "epoch": 3, "metrics": {"uar": 0.41, "war": 0.52}}


def tiny_checkpoint(tmp_path, name):
    factory = {"dataset": "dfew"} | ({} if name == "baseline" else {"backbone": "tiny"})
    torch.manual_seed(0)
    model = create_model(name, **factory)
    return save_checkpoint(tmp_path / f"{name}.pt", model, name=name, factory=factory, training=TRAINING), model


@pytest.mark.parametrize("name", list_models())
def test_every_method_exports_from_a_checkpoint_with_parity(tmp_path, name):
    checkpoint, model = tiny_checkpoint(tmp_path, name)
    bundle = export_checkpoint(checkpoint, tmp_path / "bundle", real_clip=SAMPLE_CLIP)
    spec = ModelBundle.load(tmp_path / "bundle").spec
    assert spec.method == model.bundle_cfg["method"] and spec.labels[0] == "happy"
    assert spec.trained_on.dataset == "dfew" and spec.trained_on.fold == 1
    assert spec.trained_on.uar == 0.41 and spec.trained_on.war == 0.52 and "epoch 3" in spec.trained_on.source
    assert spec.parity["random"] < 1e-4 and spec.parity["real"] < 1e-4  # real: face windows of the sample clip
    assert spec.parity["trained"] < 1e-4  # against the logits saved at training time, not the rebuilt model's
    activation = None if name == "baseline" else "quick_gelu" if model.backbone.quick_gelu else "gelu"
    assert spec.trained_on.activation == activation  # DFER-CLIP's config fixes QuickGELU, as its release runs
    assert spec.text_features == ("none" if name == "baseline" else "baked")
    engine = OnnxEngine(bundle)
    shape = (2, spec.num_frames, spec.image_size, spec.image_size, spec.channels)
    windows = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    probs = engine.predict(windows, windows if spec.needs_scene else None)
    assert probs.shape == (2, len(spec.labels)) and np.allclose(probs.sum(1), 1, atol=1e-4)


def test_fp16_bundle(tmp_path):
    checkpoint, _ = tiny_checkpoint(tmp_path, "duse")
    bundle = export_checkpoint(checkpoint, tmp_path / "fp16", fp16=True)
    assert bundle.spec.precision == "fp16" and bundle.spec.parity["fp16"] < 2e-2
    assert ModelBundle.load(tmp_path / "fp16").spec.sha256 == bundle.spec.sha256  # sha of the rewritten graph


def test_cli_and_its_errors(tmp_path):
    checkpoint, _ = tiny_checkpoint(tmp_path, "baseline")
    ok = subprocess.run([sys.executable, "-m", "export", str(checkpoint), "--out", str(tmp_path / "b")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "parity" in ok.stdout and json.loads((tmp_path / "b" / "bundle.json").read_text())["method"] == "baseline"
    trt = subprocess.run([sys.executable, "-m", "export", str(checkpoint), "--out", str(tmp_path / "t"),
                          "--tensorrt"], capture_output=True, text=True)
    assert trt.returncode == 2 and "TensorRT" in trt.stderr and "Traceback" not in trt.stderr
    missing = subprocess.run([sys.executable, "-m", "export", str(tmp_path / "none.pt"), "--out",
                              str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr


def test_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": 1}, bogus)
    with pytest.raises(CheckpointError, match="not a models.train checkpoint"):
        load_model(bogus)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path / "text.pt")


class _Payload:
    """Pickles as a call of os.system: what a malicious shared best.pt would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path):
    """Checkpoints are read with the weights-only unpickler: `python -m export best.pt` on a file from elsewhere
    cannot run code. A real training checkpoint (its numpy random state included) still loads."""
    path, _ = tiny_checkpoint(tmp_path, "baseline")
    payload = torch.load(path, weights_only=False)
    payload["resume"] = {"rng": {"numpy": np.random.get_state()}}  # what last.pt carries: loads
    torch.save(payload, path)
    load_model(path)
    marker = tmp_path / "payload-ran"
    payload["training"]["note"] = _Payload(marker)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"carries posix\.system.*refusing to unpickle"):
        load_model(path)
    assert not marker.exists()


def test_pytorch_backend_runs_a_checkpoint_like_its_bundle(tmp_path, astronaut_clip):
    """Research path: `--checkpoint` runs the checkpoint with PyTorch; same probabilities as its exported bundle."""
    from service.analyze import analyze_clip
    from service.config import Settings
    from service.detect import create_detector
    from service.inference import create_engine

    checkpoint, _ = tiny_checkpoint(tmp_path, "duse")
    settings = Settings(_env_file=None, backend="pytorch", checkpoint=checkpoint)
    torch_engine = create_engine(settings)
    assert torch_engine.providers == ["PyTorch (cpu)"] and torch_engine.spec.trained_on.uar == 0.41
    bundle = export_checkpoint(checkpoint, tmp_path / "bundle")
    windows = np.random.default_rng(2).integers(0, 255, (2, 16, 64, 64, 3), dtype=np.uint8)
    assert np.abs(torch_engine.predict(windows) - OnnxEngine(bundle).predict(windows)).max() < 1e-4
    report = analyze_clip(astronaut_clip, settings, torch_engine, create_detector(settings))
    assert report.model == torch_engine.spec.name and report.tracks and report.emotions


def test_pytorch_backend_errors(tmp_path):
    from service.config import Settings
    from service.errors import BundleError
    from service.inference import create_engine

    with pytest.raises(BundleError, match="needs a checkpoint"):
        create_engine(Settings(_env_file=None, backend="pytorch"))
    with pytest.raises(BundleError, match="checkpoint not found"):
        create_engine(Settings(_env_file=None, backend="pytorch", checkpoint=tmp_path / "none.pt"))


def test_ous_bundle_encodes_each_face_and_scene_frame_once(tmp_path):
    """OUS's face and scene frames pass the encoder independently: its bundle carries the split graphs, and the
    engine encodes a face frame once per track and a scene frame (the whole source frame) once for all tracks."""
    from service.inference import FrameFeatureCache
    from service.windows import WindowBuffers

    checkpoint, _ = tiny_checkpoint(tmp_path, "ous")
    bundle = export_checkpoint(checkpoint, tmp_path / "ous")
    assert bundle.spec.frame_cache is not None and bundle.spec.needs_scene
    engine = OnnxEngine(bundle)
    size, rng = bundle.spec.image_size, np.random.default_rng(1)
    buffers = WindowBuffers(num_frames=bundle.spec.num_frames, hop=8)
    windows = []
    for frame in range(32):  # two faces in every frame: two tracks, one scene
        scene = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for track in (1, 2):
            face = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            if window := buffers.push(track, face, frame / 8, (0, 0, 1, 1), scene, frame):
                windows.append(("cam", window))
    assert len(windows) == 6  # per track: frames 0-15, 8-23, 16-31
    cache = FrameFeatureCache()
    cached = np.concatenate([engine.predict_windows([item], cache) for item in windows])
    whole = engine.predict(np.stack([w.faces for _, w in windows]), np.stack([w.scene for _, w in windows]))
    assert np.abs(cached - whole).max() < 1e-4
    assert cache.encoded == 2 * 32 + 32  # faces per track, scenes shared
    assert cache.reused == 6 * 16 * 2 - cache.encoded


def test_cheaper_cpu_bundle_int8_and_smaller_input_reports_its_agreement(tmp_path):
    checkpoint, _ = tiny_checkpoint(tmp_path, "ous")  # OUS: its frame-cache graphs are quantised too
    bundle = export_checkpoint(checkpoint, tmp_path / "cheap", int8=True, image_size=32, real_clip=SAMPLE_CLIP,
                               min_agreement=0)
    spec = ModelBundle.load(tmp_path / "cheap").spec  # every sha256 matches the rewritten graphs
    assert spec.precision == "int8" and spec.image_size == 32 and spec.inputs[0].shape[-1] == 32
    assert spec.agreement.reference == "fp32 PyTorch at 64 px" and spec.agreement.windows >= 1
    assert 0 <= spec.agreement.top1 <= 1 and 0 <= spec.agreement.max_prob_diff <= 1
    engine = OnnxEngine(bundle)
    windows = np.random.default_rng(0).integers(0, 255, (1, spec.num_frames, 32, 32, 3), dtype=np.uint8)
    assert engine.predict(windows, windows).shape == (1, len(spec.labels))


def test_cheaper_bundle_below_the_agreement_floor_is_refused(tmp_path):
    from export.onnx_export import ParityError

    checkpoint, _ = tiny_checkpoint(tmp_path, "duse")
    with pytest.raises(ParityError, match="agrees with fp32 PyTorch at 64 px"):
        export_checkpoint(checkpoint, tmp_path / "cheap", int8=True, real_clip=SAMPLE_CLIP, min_agreement=1.01)
    assert not (tmp_path / "cheap").exists()
    with pytest.raises(ValueError, match="choose one"):
        export_checkpoint(checkpoint, tmp_path / "x", int8=True, fp16=True)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        export_checkpoint(checkpoint, tmp_path / "x", image_size=40)
