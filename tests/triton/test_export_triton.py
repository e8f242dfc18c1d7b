"""`python -m export triton`: config.pbtxt checked against Triton's own ModelConfig schema (the protobuf module
tritonclient ships), the contract it carries, the uint8 graphs, the repository layout and the command line."""

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from export.triton import triton_config, triton_model_name, with_uint8_pixels, write_triton_repository
from service.bundle import ModelBundle
from service.config import FER_BUNDLE
from service.inference.engine import normalise
from service.inference.remote_contract import CONTRACT_PARAMETER, differences, read_contract, served_tensors

BUNDLE = ModelBundle.load(FER_BUNDLE)


def parsed(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def as_served(config: model_config_pb2.ModelConfig) -> dict:
    """The configuration as a server answers it (KServe JSON form), and the metadata it derives from it."""
    as_json = json_format.MessageToDict(config, preserving_proto_field_name=True)
    datatype = {v: k.removeprefix("TYPE_") for k, v in model_config_pb2.DataType.items()}

    def tensors(items):
        return [{"name": t.name, "datatype": datatype[t.data_type], "shape": [-1, *t.dims]} for t in items]

    return as_json, {"inputs": tensors(config.input), "outputs": tensors(config.output)}


@pytest.mark.parametrize("role", ["whole", "frame_encoder", "window_head"])
@pytest.mark.parametrize("pixels", ["uint8", "float32"])
@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
def test_every_config_is_a_valid_model_config_whose_contract_matches_its_tensors(role, pixels, backend):
    config = parsed(triton_config(BUNDLE, role, pixels, backend=backend, max_batch_size=8, tensorrt=True))
    assert config.backend == backend and config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.instance_group[0].kind == (model_config_pb2.ModelInstanceGroup.KIND_CPU if backend == "python"
                                             else model_config_pb2.ModelInstanceGroup.KIND_GPU)
    assert bool(config.optimization.execution_accelerators.gpu_execution_accelerator) == (backend == "onnxruntime")
    (warmup,) = config.model_warmup  # the model is READY only after one inference of zeros
    assert warmup.batch_size == 1 and set(warmup.inputs) == {t.name for t in config.input}
    as_json, metadata = as_served(config)
    contract = read_contract(as_json)
    assert contract.role == role and contract.pixels == pixels and contract.bundle == BUNDLE.spec
    assert differences(contract, metadata, config.max_batch_size) == []
    if role == "whole":
        assert contract.parts == {"frame_encoder": "fer-mini-xception-frame-encoder",
                                  "window_head": "fer-mini-xception-window-head"}


def test_the_whole_model_takes_uint8_crops_as_the_service_makes_them():
    config = parsed(triton_config(BUNDLE, max_batch_size=8))
    assert config.name == "fer-mini-xception" and config.max_batch_size == 8
    (faces,) = config.input
    assert (faces.name, faces.data_type, list(faces.dims)) == ("faces", model_config_pb2.TYPE_UINT8, [16, 64, 64, 1])
    (logits,) = config.output
    assert (logits.name, list(logits.dims), logits.label_filename) == ("logits", [7], "labels.txt")
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    float_faces = parsed(triton_config(BUNDLE, pixels="float32")).input[0]
    assert (float_faces.data_type, list(float_faces.dims)) == (model_config_pb2.TYPE_FP32, [16, 1, 64, 64])
    encoder = parsed(triton_config(BUNDLE, "frame_encoder", max_batch_size=8))
    assert encoder.max_batch_size == 8 * 16 and list(encoder.input[0].dims) == [64, 64, 1]  # frames of 8 windows
    assert not encoder.dynamic_batching.preferred_batch_size


def test_a_contract_that_differs_from_the_served_tensors_is_named():
    as_json, metadata = as_served(parsed(triton_config(BUNDLE)))
    contract = read_contract(as_json)
    metadata["inputs"][0]["shape"] = [-1, 8, 64, 64, 1]
    metadata["outputs"][0]["datatype"] = "FP16"
    assert differences(contract, metadata, 16) == [
        "input 'faces' has dims [8, 64, 64, 1], the contract needs [16, 64, 64, 1]",
        "output 'logits' is FP16, the contract needs FP32"]
    metadata["inputs"][0]["name"] = "pixels"
    assert differences(contract, metadata, 16)[0] == "inputs are ['pixels'], the contract needs ['faces']"
    assert differences(contract, metadata, 0) == ["max_batch_size is 0: the model must batch (max_batch_size >= 1)"]
    with pytest.raises(ValueError, match="no 'emotion_contract' parameter"):
        read_contract({"parameters": {}})
    broken = {"role": "whole", "pixels": "uint8", "bundle": BUNDLE.spec.model_dump(mode="json") | {"labels": ["one"]}}
    with pytest.raises(ValueError, match="bundle.labels"):
        read_contract({"parameters": {CONTRACT_PARAMETER: {"string_value": json.dumps(broken)}}})


def test_served_tensors_of_a_split_bundle():
    inputs, outputs = served_tensors(BUNDLE.spec, "window_head", "uint8")
    assert [(t.name, t.datatype, t.dims) for t in inputs] == [("features", "FP32", (16, 7))]
    assert [(t.name, t.dims) for t in outputs] == [("logits", (7,))]


def test_the_uint8_graph_computes_what_normalise_and_the_bundles_graph_do(tmp_path):
    target = tmp_path / "model.onnx"
    assert with_uint8_pixels(BUNDLE.onnx_path, target, BUNDLE.spec.mean, BUNDLE.spec.std) <= 1e-5
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (3, 16, 64, 64, 1), dtype=np.uint8)
    served = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(BUNDLE.onnx_path), providers=["CPUExecutionProvider"])
    (got,) = served.run(["logits"], {"faces": crops})
    (want,) = original.run(["logits"], {"faces": normalise(crops, BUNDLE.spec.mean, BUNDLE.spec.std)})
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert served.get_inputs()[0].type == "tensor(uint8)"


def test_repository_layout(tmp_path):
    whole, encoder, head = write_triton_repository(BUNDLE, tmp_path / "repo", backend="python")
    assert [d.name for d in (whole, encoder, head)] == ["fer-mini-xception", "fer-mini-xception-frame-encoder",
                                                        "fer-mini-xception-window-head"]
    assert (head / "1" / "model.onnx").read_bytes() == (FER_BUNDLE / "window_head.onnx").read_bytes()
    assert (whole / "1" / "model.onnx").read_bytes() != (FER_BUNDLE / "model.onnx").read_bytes()  # uint8 in
    for model_dir in (whole, encoder, head):
        assert (model_dir / "1" / "model.py").exists() and (model_dir / "bundle.json").exists()
        assert parsed((model_dir / "config.pbtxt").read_text()).name == model_dir.name
    assert (whole / "labels.txt").read_text().split() == BUNDLE.spec.labels and not (encoder / "labels.txt").exists()
    assert triton_model_name("duse vit/b16") == "duse_vit_b16"


def test_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "export", "triton", str(FER_BUNDLE), "--repo",
                             str(tmp_path / "repo"), "--max-batch", "32", "--float-pixels"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    config = parsed((tmp_path / "repo" / "fer-mini-xception" / "config.pbtxt").read_text())
    assert config.max_batch_size == 32 and config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert "--engine triton://SERVER:8001/fer-mini-xception" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "export", "triton", str(tmp_path / "nope"), "--repo",
                              str(tmp_path / "r")], capture_output=True, text=True)
    assert missing.returncode == 2 and "model bundle not found" in missing.stderr
