"""Where face-api.js's weights come from: the MIT-licensed npm package `@vladmandic/face-api` 1.7.15, installed with
the pure-JS TensorFlow.js that runs it (`make faceapi-npm`: npm, at install time only) into .cache/faceapi-node/.

Its `model/` folder has one TensorFlow.js weights manifest plus one .bin per net; the files we convert are pinned
by sha256, so a different file under the same name is refused rather than converted. @tensorflow/tfjs-node (the
native backend) is not used: its install downloads a TensorFlow library from outside the npm registry, which is
unreachable here (tried 2026-12-07: ENOTFOUND); the pure-JS CPU backend computes the same float32 arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

FACEAPI_PACKAGE = "@vladmandic/face-api"
FACEAPI_VERSION = "1.7.15"
TFJS_VERSION = "4.22.0"
FACEAPI_LICENSE = "MIT (c) Vladimir Mandic; face-api.js (c) 2018 Vincent Mühler (MIT)"
DEFAULT_NPM_DIR = Path(__file__).resolve().parent.parent / ".cache" / "faceapi-node"
HOW_TO_GET = (f"install it with `make faceapi-npm` (npm install {FACEAPI_PACKAGE}@{FACEAPI_VERSION} "
              f"@tensorflow/tfjs@{TFJS_VERSION} @tensorflow/tfjs-backend-wasm@{TFJS_VERSION} into {DEFAULT_NPM_DIR}), "
              "or point FACEAPI_NPM_DIR at a folder holding node_modules/ with them")
# model/<name>-weights_manifest.json and model/<name>.bin of 1.7.15
PINNED_SHA256 = {
    "face_expression_model-weights_manifest.json": "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
    "face_expression_model.bin": "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
    "face_landmark_68_model-weights_manifest.json": "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
    "face_landmark_68_model.bin": "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
    "face_recognition_model-weights_manifest.json": "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
    "face_recognition_model.bin": "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
}


class FaceApiNotFound(FileNotFoundError):
    pass


@dataclass(frozen=True)
class FaceApiPackage:
    npm_dir: Path  # holds node_modules/
    package_dir: Path  # node_modules/@vladmandic/face-api

    @property
    def model_dir(self) -> Path:
        return self.package_dir / "model"

    def manifest(self, model: str) -> Path:
        """model/<model>-weights_manifest.json, its files checked against the pinned sha256 where pinned."""
        manifest = self.model_dir / f"{model}-weights_manifest.json"
        for path in (manifest, self.model_dir / f"{model}.bin"):
            if not path.is_file():
                raise FaceApiNotFound(f"{path} not found: {HOW_TO_GET}")
            expected = PINNED_SHA256.get(path.name)
            if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
                raise FaceApiNotFound(f"{path} is not the file {FACEAPI_PACKAGE}@{FACEAPI_VERSION} ships (sha256 "
                                      "differs): reinstall it with `make faceapi-npm`")
        return manifest

    def source(self, model: str) -> str:
        return f"npm {FACEAPI_PACKAGE}@{FACEAPI_VERSION}, model/{model}-weights_manifest.json + {model}.bin"


def find_faceapi(npm_dir: str | os.PathLike | None = None) -> FaceApiPackage:
    """The installed package: an explicit folder, then $FACEAPI_NPM_DIR, then .cache/faceapi-node/ of this checkout;
    its package.json must say version 1.7.15."""
    root = Path(npm_dir or os.environ.get("FACEAPI_NPM_DIR") or DEFAULT_NPM_DIR)
    package_dir = root / "node_modules" / "@vladmandic" / "face-api"
    meta = package_dir / "package.json"
    if not meta.is_file():
        raise FaceApiNotFound(f"{FACEAPI_PACKAGE} not found in {root}: {HOW_TO_GET}")
    version = json.loads(meta.read_text()).get("version")
    if version != FACEAPI_VERSION:
        raise FaceApiNotFound(f"{package_dir} is {FACEAPI_PACKAGE}@{version}, the conversion is pinned to "
                              f"{FACEAPI_VERSION}: {HOW_TO_GET}")
    return FaceApiPackage(root, package_dir)
