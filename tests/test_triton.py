import subprocess
import sys

from export.triton import triton_config, triton_model_name, write_triton_repository
from service.bundle import ModelBundle
from service.config import DEFAULT_BUNDLE


def test_config_declares_inputs_outputs_and_dynamic_batching():
    text = triton_config(ModelBundle.load(DEFAULT_BUNDLE), max_batch_size=8)
    assert 'name: "fer-mini-xception"' in text and 'backend: "onnxruntime"' in text
    assert "max_batch_size: 8" in text
    assert 'name: "faces"\n    data_type: TYPE_FP32\n    dims: [ 16, 1, 64, 64 ]' in text
    assert 'name: "logits"\n    data_type: TYPE_FP32\n    dims: [ 7 ]' in text and 'label_filename: "labels.txt"' in text
    assert "dynamic_batching {\n  preferred_batch_size: [ 4, 8 ]" in text and "KIND_GPU" in text
    assert "tensorrt" not in text and 'name : "tensorrt"' in triton_config(ModelBundle.load(DEFAULT_BUNDLE), tensorrt=True)
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")


def test_repository_layout(tmp_path):
    model_dir = write_triton_repository(ModelBundle.load(DEFAULT_BUNDLE), tmp_path / "repo")
    assert model_dir.name == "fer-mini-xception"
    assert (model_dir / "1" / "model.onnx").read_bytes() == (DEFAULT_BUNDLE / "model.onnx").read_bytes()
    assert (model_dir / "labels.txt").read_text().split() == ModelBundle.load(DEFAULT_BUNDLE).spec.labels
    assert (model_dir / "bundle.json").exists() and (model_dir / "config.pbtxt").exists()
    assert triton_model_name("duse vit/b16") == "duse_vit_b16"


def test_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "export", "triton", str(DEFAULT_BUNDLE), "--repo",
                             str(tmp_path / "repo"), "--max-batch", "32"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "max_batch_size: 32" in (tmp_path / "repo" / "fer-mini-xception" / "config.pbtxt").read_text()
    missing = subprocess.run([sys.executable, "-m", "export", "triton", str(tmp_path / "nope"), "--repo",
                              str(tmp_path / "r")], capture_output=True, text=True)
    assert missing.returncode == 2 and "model bundle not found" in missing.stderr
