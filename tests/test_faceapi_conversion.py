"""The TensorFlow.js weights reader (every dtype and quantisation face-api's files use, and TensorFlow.js's others),
and proof that the embedded face-api bundle is face-api's network: against face-api's own code running its own
weights in Node with TensorFlow.js, on real face crops."""

import json

import numpy as np
import pytest

from export.tfjs_weights import TfjsWeightsError, read_manifest


def write_manifest(tmp_path, groups):
    """groups: [[(spec, raw bytes), ...], ...] -> a manifest with one shard per group (two for the first)."""
    manifest = []
    for g, weights in enumerate(groups):
        data = b"".join(raw for _, raw in weights)
        paths = [f"g{g}-shard1of2.bin", f"g{g}-shard2of2.bin"] if g == 0 else [f"g{g}.bin"]
        cut = len(data) // 2 if g == 0 else len(data)
        (tmp_path / paths[0]).write_bytes(data[:cut])
        if g == 0:
            (tmp_path / paths[1]).write_bytes(data[cut:])
        manifest.append({"paths": paths, "weights": [spec for spec, _ in weights]})
    path = tmp_path / "m-weights_manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_every_dtype_and_quantisation_decodes_as_tensorflow_js_does(tmp_path):
    plain = np.arange(6, dtype="<f4").reshape(2, 3) / 7
    q8 = np.array([0, 1, 255, 128], np.uint8)
    q16 = np.array([0, 65535, 1000], "<u2")
    half = np.array([0.5, -2.0, 1e-3], "<f2")
    ints = np.array([-3, 7], "<i4")
    path = write_manifest(tmp_path, [
        [({"name": "plain", "shape": [2, 3], "dtype": "float32"}, plain.tobytes()),
         ({"name": "q8", "shape": [2, 2], "dtype": "float32",
           "quantization": {"dtype": "uint8", "scale": 0.01, "min": -0.5}}, q8.tobytes()),
         ({"name": "q8int", "shape": [4], "dtype": "int32",
           "quantization": {"dtype": "uint8", "scale": 0.5, "min": -3.0}}, q8.tobytes())],
        [({"name": "q16", "shape": [3], "dtype": "float32",
           "quantization": {"dtype": "uint16", "scale": 1e-4, "min": 1.0}}, q16.tobytes()),
         ({"name": "half", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}}, half.tobytes()),
         ({"name": "ints", "shape": [2], "dtype": "int32"}, ints.tobytes()),
         ({"name": "flag", "shape": [], "dtype": "bool"}, b"\x01")]])
    w = read_manifest(path)
    assert np.array_equal(w["plain"], plain) and w["plain"].dtype == np.float32
    assert np.array_equal(w["q8"], (q8.astype(np.float64) * 0.01 - 0.5).astype(np.float32).reshape(2, 2))
    assert w["q8int"].tolist() == [-3, -2, 125, 61] and w["q8int"].dtype == np.int32  # round(q * scale + min)
    assert np.allclose(w["q16"], [1.0, 7.5535, 1.1]) and np.array_equal(w["half"], half.astype(np.float32))
    assert w["ints"].tolist() == [-3, 7] and w["flag"].shape == () and bool(w["flag"])


@pytest.mark.parametrize("spec, raw, message", [
    ({"name": "s", "shape": [1], "dtype": "string"}, b"\0" * 4, "dtype 'string' is not supported"),
    ({"name": "q", "shape": [1], "dtype": "float32", "quantization": {"dtype": "uint8"}}, b"\0", "without min"),
    ({"name": "q", "shape": [1], "dtype": "float32", "quantization": {"dtype": "int4"}}, b"\0", "unknown quant"),
    ({"name": "big", "shape": [4], "dtype": "float32"}, b"\0" * 8, "needs bytes 0..16"),
    ({"name": "small", "shape": [1], "dtype": "float32"}, b"\0" * 8, "use 4 bytes of 8"),
])
def test_what_tensorflow_js_would_not_read_is_refused_by_name(tmp_path, spec, raw, message):
    path = tmp_path / "x-weights_manifest.json"
    (tmp_path / "x.bin").write_bytes(raw)
    path.write_text(json.dumps([{"paths": ["x.bin"], "weights": [spec]}]))
    with pytest.raises(TfjsWeightsError, match=message):
        read_manifest(path)


def test_missing_shard_is_named(tmp_path):
    path = tmp_path / "y-weights_manifest.json"
    path.write_text(json.dumps([{"paths": ["gone.bin"], "weights": []}]))
    with pytest.raises(TfjsWeightsError, match="gone.bin"):
        read_manifest(path)


# ---- the real net -----------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def test_face_api_weights_load_into_our_architecture_exactly(faceapi_package):
    from models.faceapi import WeightsMismatch, load_face_processor

    weights = read_manifest(faceapi_package.manifest("face_expression_model"))
    assert len(weights) == 49 and weights["fc/weights"].shape == (256, 7)
    model = load_face_processor(weights, 7)
    assert torch.equal(model.fc.weight, torch.from_numpy(weights["fc/weights"].T.copy()))
    dw = model.features.blocks[3].conv2.depthwise.weight
    assert torch.equal(dw[5, 0], torch.from_numpy(weights["dense3/conv2/depthwise_filter"][:, :, 5, 0]))
    broken = dict(weights)
    broken.pop("dense1/conv0/bias")
    with pytest.raises(WeightsMismatch, match="missing dense1/conv0/bias"):
        load_face_processor(broken, 7)
    with pytest.raises(WeightsMismatch, match="fc/weights has shape"):
        load_face_processor(weights, 136)


def test_embedded_bundle_matches_face_api_in_tensorflow_js_on_real_faces(faceapi_package):
    """The bundle the service runs against face-api's own net (Node, TensorFlow.js CPU backend) on 40 real face
    crops of five expressions of four photographs."""
    from export.faceapi_expression import TFJS_TOLERANCE
    from export.real_inputs import real_photo_crops
    from export.tfjs_reference import run_tfjs
    from service.bundle import ModelBundle
    from service.config import ASSETS_DIR
    from service.inference import OnnxEngine

    bundle = ModelBundle.load(ASSETS_DIR / "bundles" / "faceapi-expression")
    crops = np.stack(real_photo_crops(112, 3))
    reference = run_tfjs(faceapi_package, "faceExpressionNet", crops)
    assert reference["backend"] == "cpu" and reference["faceapi"] == "1.7.15"
    engine = OnnxEngine(bundle)
    # the bundle's temperature is the service's calibration; TensorFlow.js gives the plain softmax
    uncalibrated = bundle.spec.model_copy(update={"calibration": None})
    engine.spec = uncalibrated
    ours = engine.predict(np.repeat(crops[:, None], 16, axis=1))
    diff = np.abs(ours - reference["outputs"]).max()
    print(f"\nmax abs probability difference, embedded bundle vs face-api in TensorFlow.js, {len(crops)} crops: "
          f"{diff:.2e}")
    assert diff < TFJS_TOLERANCE and np.array_equal(ours.argmax(1), reference["outputs"].argmax(1))
    assert len(set(reference["outputs"].argmax(1))) >= 2  # not one label everywhere
    assert bundle.spec.labels[np.argmax(ours[0])] == "happy"  # the astronaut smiles


def test_reexport_reproduces_the_embedded_bundle(faceapi_package, tmp_path):
    from export.faceapi_expression import export_faceapi_expression
    from service.bundle import ModelBundle
    from service.config import ASSETS_DIR

    fresh = export_faceapi_expression(tmp_path / "fa", faceapi_package.npm_dir)
    embedded = ModelBundle.load(ASSETS_DIR / "bundles" / "faceapi-expression").spec
    skip = {"sha256", "parity", "frame_cache"}
    assert fresh.spec.model_dump(exclude=skip) == embedded.model_dump(exclude=skip)
    assert embedded.trained_on.license.startswith("MIT") and "1.7.15" in embedded.trained_on.source
    assert embedded.calibration.fitted_on == "ckplus48-calib" and embedded.temperature > 1
