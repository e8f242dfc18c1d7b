"""The export path every model takes: ONNX graph, checks, parity, and a bundle the service accepts."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.onnx_export import ParityError, check_parity, export_bundle, random_inputs  # noqa: E402
from service.bundle import ModelBundle  # noqa: E402
from service.inference import OnnxEngine  # noqa: E402


class TinyWindowModel(torch.nn.Module):
    """Smallest model with the window contract: faces[B,T,C,H,W] (and optionally scene) -> logits[B,3]."""

    def __init__(self, needs_scene=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.head = torch.nn.Linear(3 * 8 * 8, 3)
        self.bundle_cfg = {"name": "tiny", "method": "ous" if needs_scene else "baseline",
                           "labels": ["a", "b", "c"], "num_frames": 4, "image_size": 8, "channels": 3,
                           "mean": [0.5] * 3, "std": [0.25] * 3, "needs_scene": needs_scene}

    def forward(self, faces, scene=None):
        x = faces.mean(1).flatten(1)
        if scene is not None:
            x = x + scene.mean(1).flatten(1)
        return self.head(x)


@pytest.mark.parametrize("needs_scene", [False, True])
def test_export_writes_a_bundle_the_service_runs(tmp_path, needs_scene):
    model = TinyWindowModel(needs_scene)
    bundle = export_bundle(model, tmp_path / "tiny")
    loaded = ModelBundle.load(tmp_path / "tiny")
    assert loaded.spec == bundle.spec and loaded.spec.needs_scene == needs_scene
    assert [t.name for t in loaded.spec.inputs] == (["faces", "scene"] if needs_scene else ["faces"])
    assert loaded.spec.parity["random"] < 1e-5
    windows = np.random.default_rng(1).integers(0, 255, (5, 4, 8, 8, 3), dtype=np.uint8)
    probs = OnnxEngine(loaded).predict(windows, windows if needs_scene else None)
    assert probs.shape == (5, 3)  # dynamic batch axis


def test_parity_failure_is_reported_and_leaves_no_bundle(tmp_path, monkeypatch):
    import export.onnx_export as onnx_export

    original = onnx_export.check_parity

    def against_another_model(model, path, inputs, tolerance):
        return original(TinyWindowModel(seed=1), path, inputs, tolerance)

    monkeypatch.setattr(onnx_export, "check_parity", against_another_model)
    with pytest.raises(ParityError, match="differ"):
        export_bundle(TinyWindowModel(seed=0), tmp_path / "tiny")
    assert not (tmp_path / "tiny").exists()


def test_check_parity_passes_for_the_same_model(tmp_path):
    model = TinyWindowModel().eval()
    export_bundle(model, tmp_path / "tiny")
    report = check_parity(model, tmp_path / "tiny" / "model.onnx", {"again": random_inputs(model.bundle_cfg, seed=3)})
    assert report.max_abs_diff["again"] < 1e-5
