"""A trained checkpoint (models.train) -> model bundle: the same export path as every model, plus the checkpoint's
provenance in bundle.json, and optionally an fp16 graph and a prebuilt TensorRT engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from export.onnx_export import DEFAULT_OPSET, DEFAULT_TOLERANCE, ParityError, export_bundle, random_inputs
from export.real_inputs import real_face_windows
from service.bundle import BUNDLE_JSON, MODEL_ONNX, ModelBundle, TrainingInfo, file_sha256

log = logging.getLogger(__name__)

FP16_TOLERANCE = 2e-2  # fp16 logits against fp32 PyTorch: half precision, not a bug


def training_info(meta: dict, checkpoint: Path) -> TrainingInfo:
    training = meta.get("training", {})
    metrics = training.get("metrics") or {}
    return TrainingInfo(dataset=training.get("dataset"), fold=training.get("fold"), uar=metrics.get("uar"),
                        war=metrics.get("war"),
                        source=f"{checkpoint.name} (sha256 {meta['sha256'][:16]}, epoch {training.get('epoch')})")


def convert_fp16(bundle: ModelBundle, model, inputs: dict, tolerance: float = FP16_TOLERANCE) -> float:
    """Rewrite model.onnx with fp16 weights and arithmetic, fp32 inputs and outputs kept (the service feeds the
    same arrays); checked against PyTorch fp32 on `inputs`."""
    import torch
    from onnxruntime.transformers.float16 import convert_float_to_float16

    graph = convert_float_to_float16(onnx.load(str(bundle.onnx_path)), keep_io_types=True)
    onnx.save(graph, str(bundle.onnx_path))
    session = ort.InferenceSession(str(bundle.onnx_path), providers=ort.get_available_providers())
    with torch.no_grad():
        reference = model(inputs["faces"], inputs.get("scene")).numpy()
    (logits,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
    diff = float(np.abs(logits - reference).max())
    if not diff <= tolerance:
        raise ParityError(f"fp16 graph differs from PyTorch fp32 by {diff:.3g} (> {tolerance:g})")
    return diff


def build_tensorrt_engine(bundle: ModelBundle, cache_dir: Path, batch: int = 1) -> None:
    """Build (and cache in the bundle) the TensorRT engine by running one batch through ONNX Runtime's TensorRT
    provider; refuses clearly where TensorRT is not available."""
    available = ort.get_available_providers()
    if "TensorrtExecutionProvider" not in available:
        raise RuntimeError(f"--tensorrt needs onnxruntime-gpu with TensorRT on a GPU machine; this ONNX Runtime has "
                           f"{', '.join(available)}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir), "trt_fp16_enable": True,
               "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir)}
    session = ort.InferenceSession(str(bundle.onnx_path), providers=[("TensorrtExecutionProvider", options)])
    feeds = {k: v.numpy() for k, v in random_inputs(bundle.spec.model_dump() | {
        "needs_scene": bundle.spec.needs_scene}, batch=batch).items()}
    session.run(["logits"], feeds)


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, fp16: bool = False, tensorrt: bool = False,
                      opset: int = DEFAULT_OPSET, real_clip: Path | None = None,
                      tolerance: float = DEFAULT_TOLERANCE) -> ModelBundle:
    from models.checkpoint import load_model

    checkpoint = Path(checkpoint)
    model, meta = load_model(checkpoint)
    real = real_face_windows(model.bundle_cfg, real_clip) if real_clip else None
    bundle = export_bundle(model, out_dir, training=training_info(meta, checkpoint),
                           backbone=model.bundle_cfg.get("backbone"), real_inputs=real, opset=opset,
                           tolerance=tolerance)
    extra = {}
    if fp16:
        inputs = real or random_inputs(model.bundle_cfg)
        extra["precision"] = "fp16"
        extra["parity"] = bundle.spec.parity | {"fp16": float(f"{convert_fp16(bundle, model, inputs):.3g}")}
    if tensorrt:
        build_tensorrt_engine(bundle, bundle.directory / "tensorrt")
        extra["tensorrt_cache"] = "tensorrt"
    if extra:
        spec = bundle.spec.model_copy(update=extra | {"sha256": file_sha256(bundle.directory / MODEL_ONNX)})
        bundle = ModelBundle(bundle.directory, spec)
        bundle.write_spec()
        ModelBundle.load(bundle.directory)
    log.info("bundle.json: %s", json.dumps(json.loads((bundle.directory / BUNDLE_JSON).read_text())["parity"]))
    return bundle
