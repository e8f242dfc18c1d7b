"""Run one of face-api.js's nets with TensorFlow.js in Node (export/tfjs_reference.js), as face-api's own code
loads and runs it, on uint8 RGB images: the reference a conversion's ONNX graph is compared with."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from export.faceapi_package import FaceApiPackage

SCRIPT = Path(__file__).with_name("tfjs_reference.js")


class TfjsReferenceError(RuntimeError):
    pass


def run_tfjs(package: FaceApiPackage, net: str, images: np.ndarray | list[np.ndarray], timeout_s: float = 600) -> dict:
    """`faceapi.nets[net].forward` on each image of `images` ([N, S, S, 3], or a list of [H, W, 3] of any sizes;
    uint8 RGB), with the pure-JS CPU backend: {"outputs": [N, K] float64 array, "backend", "tfjs", "faceapi"}."""
    node = shutil.which("node")
    if node is None:
        raise TfjsReferenceError("node (Node.js) is not on PATH: the TensorFlow.js reference needs it (apt-get install "
                              "nodejs npm)")
    images = [np.ascontiguousarray(image, np.uint8) for image in images]
    with tempfile.TemporaryDirectory() as tmp:
        inputs, shapes, outputs = Path(tmp) / "images.bin", Path(tmp) / "shapes.json", Path(tmp) / "outputs.json"
        inputs.write_bytes(b"".join(image.tobytes() for image in images))
        shapes.write_text(json.dumps([list(image.shape[:2]) for image in images]))
        done = subprocess.run([node, str(SCRIPT), str(package.npm_dir), str(package.model_dir), net, str(inputs),
                               str(shapes), str(outputs)], capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not outputs.is_file():
            raise TfjsReferenceError(f"TensorFlow.js reference failed (exit {done.returncode}): "
                                  f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'}")
        result = json.loads(outputs.read_text())
    result["outputs"] = np.asarray(result["outputs"], np.float64)
    return result
