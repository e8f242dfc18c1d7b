"""The second embedded model: face-api.js's expression net (npm `@vladmandic/face-api` 1.7.15, MIT) as a `baseline`
bundle, converted at build time (`make faceapi-bundle`; nothing is downloaded at run time).

TensorFlow.js weights (export/tfjs_weights.py) -> our PyTorch build of its architecture (models/faceapi.py) ->
export/onnx_export.py (ONNX, onnx.checker, ONNX Runtime against PyTorch) -> then the bundle the service will run is
checked against the original: face-api's own code running its own weights in Node with TensorFlow.js
(export/tfjs_reference.js), on real face crops (export/real_inputs.py real_photo_crops, and the sample clip's); the
largest probability difference must stay within
TFJS_TOLERANCE and every crop must get the same label. The figures go into bundle.json (`parity`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from export.faceapi_package import FACEAPI_LICENSE, find_faceapi
from export.onnx_export import ParityError, export_bundle
from export.real_inputs import real_face_crops, real_face_windows, real_photo_crops
from export.tfjs_reference import run_tfjs
from export.tfjs_weights import read_manifest
from models.faceapi import FACEAPI_EXPRESSION_LABELS, INPUT_SIZE, faceapi_expression_baseline
from service.bundle import Calibration, CropSpec, ModelBundle, TrainingInfo

log = logging.getLogger(__name__)

MODEL = "face_expression_model"
# Both sides compute in float32 from the same dequantised weights; what is left is summation order (seen: 1.2e-7).
TFJS_TOLERANCE = 1e-4
# face-api crops its detector's box as it is (extractFaces) and pads it to a square; BlazeFace's boxes are square.
FACEAPI_CROP = CropSpec(margin=0.0, align="none", size=INPUT_SIZE, colour="rgb")
# Fitted by `python -m bench.real_faces` (models/calibration.py) on the CK+48 faces of even-numbered subjects
# (CK+, Lucey et al. 2010; read from WuJie1010/Facial-Expression-Recognition.Pytorch, not shipped), 2026-12-07; the
# figures it is judged by come from the other sets (docs/RESEARCH.md). `--calibrate FOLDER` fits it anew.
RECORDED_CALIBRATION = Calibration(temperature=2.7343, fitted_on="ckplus48-calib", samples=495, ece_before=0.084,
                                   ece_after=0.0378)
TRAINED_ON = "unpublished: 'a variety of images from publicly available datasets as well as images scraped from the " \
             "web' (face-api.js README)"


def tfjs_parity(bundle: ModelBundle, package, crops: np.ndarray, tolerance: float = TFJS_TOLERANCE
                ) -> dict[str, float]:
    """The bundle's probabilities on still windows of each crop against face-api's net in TensorFlow.js."""
    from service.inference.engine import OnnxEngine

    reference = run_tfjs(package, "faceExpressionNet", crops)
    ours = OnnxEngine(bundle).predict(np.repeat(crops[:, None], bundle.spec.num_frames, axis=1))
    diff = float(np.abs(ours - reference["outputs"]).max())
    same = float(np.mean(ours.argmax(1) == reference["outputs"].argmax(1)))
    log.info("against TensorFlow.js %s (%s backend) on %d real crops: max abs probability diff %.3g, same label %.0f%%",
             reference["tfjs"], reference["backend"], len(crops), diff, 100 * same)
    if not (diff <= tolerance and same == 1.0):
        raise ParityError(f"the bundle differs from face-api's net in TensorFlow.js by {diff:.3g} (> {tolerance:g}) "
                          f"or in labels ({same:.0%} the same) on {len(crops)} real face crops")
    return {"tfjs_real": float(f"{diff:.3g}")}


def export_faceapi_expression(out_dir: str | Path, npm_dir: str | Path | None = None, real_clip: Path | None = None,
                              opset: int = 17, calibrate: Path | None = None,
                              calibrate_whole_image: bool = False) -> ModelBundle:
    package = find_faceapi(npm_dir)
    model = faceapi_expression_baseline(read_manifest(package.manifest(MODEL)))
    real = real_face_windows(model.bundle_cfg, real_clip, crop=FACEAPI_CROP) if real_clip else None
    training = TrainingInfo(dataset=TRAINED_ON, source=package.source(MODEL), license=FACEAPI_LICENSE)
    bundle = export_bundle(model, out_dir, training=training, backbone="faceapi-feature-extractor", real_inputs=real,
                           opset=opset, crop=FACEAPI_CROP)
    crops = real_photo_crops(INPUT_SIZE, 3)
    if real_clip:
        crops += real_face_crops(real_clip, INPUT_SIZE, 3, FACEAPI_CROP, 16)[0]
    check = tfjs_parity(bundle, package, np.stack(crops))
    spec = bundle.spec.model_copy(update={"parity": bundle.spec.parity | check,
                                          "source_labels": list(FACEAPI_EXPRESSION_LABELS),
                                          "calibration": RECORDED_CALIBRATION if calibrate is None else None})
    bundle = ModelBundle(bundle.directory, spec)
    bundle.write_spec()
    if calibrate is not None:
        from export.calibrate import calibrate_bundle

        bundle = calibrate_bundle(bundle, calibrate, whole_image=calibrate_whole_image)
    return ModelBundle.load(bundle.directory)
