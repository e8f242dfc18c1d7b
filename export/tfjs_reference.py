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


def run_tfjs(package: FaceApiPackage, net: str, images: np.ndarray, timeout_s: float = 600) -> dict:
    """`faceapi.nets[net].forward` on each image of `images` [N, S, S, 3] uint8 RGB, with the pure-JS CPU backend:
    {"outputs": [N, K] float64 array, "backend", "tfjs", "faceapi"}."""
    node = shutil.which("node")
    if node is None:
        raise TfjsReferenceError("node (Node.js) is not on PATH: the TensorFlow.js reference needs it (apt-get install "
                              "nodejs npm)")
    images = np.ascontiguousarray(images, np.uint8)
    count, side = images.shape[0], images.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "images.bin", Path(tmp) / "outputs.json"
        inputs.write_bytes(images.tobytes())
        done = subprocess.run([node, str(SCRIPT), str(package.npm_dir), str(package.model_dir), net, str(inputs),
                               str(count), str(side), str(outputs)], capture_output=True, text=True,
                              timeout=timeout_s)
        if done.returncode != 0 or not outputs.is_file():
            raise TfjsReferenceError(f"TensorFlow.js reference failed (exit {done.returncode}): "
                                  f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'}")
        result = json.loads(outputs.read_text())
    result["outputs"] = np.asarray(result["outputs"], np.float64)
    return result
