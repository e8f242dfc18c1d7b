"""A trained checkpoint (models.train) -> model bundle: the same export path as every model, plus the checkpoint's
provenance in bundle.json, and optionally an fp16 graph and a prebuilt TensorRT engine (GPUs), or an int8 and/or
smaller-input bundle (CPUs) with its measured agreement."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.agreement import bundle_probabilities, compare, torch_probabilities
from export.int8 import quantize_bundle
from export.onnx_export import (DEFAULT_OPSET, DEFAULT_TOLERANCE, ParityError, export_bundle, random_inputs,
                                rewrite_graphs, torch_logits)
from export.real_inputs import real_face_windows
from service.bundle import BUNDLE_JSON, MODEL_ONNX, Calibration, CropSpec, ModelBundle, TrainingInfo, file_sha256

log = logging.getLogger(__name__)

FP16_TOLERANCE = 2e-2  # fp16 logits against fp32 PyTorch: half precision, not a bug
MIN_AGREEMENT = 0.6  # int8 / resized bundles: least top-1 agreement with the fp32 model on real windows
AGREEMENT_WINDOWS = 8  # real windows compared (as many as the clip gives, up to this)
PARITY_WINDOWS = 2  # real windows in the parity check


def training_info(meta: dict, checkpoint: Path) -> TrainingInfo:
    training = meta.get("training", {})
    metrics = training.get("metrics") or {}
    return TrainingInfo(dataset=training.get("dataset"), fold=training.get("fold"), uar=metrics.get("uar"),
                        war=metrics.get("war"),
                        source=f"{checkpoint.name} (sha256 {meta['sha256'][:16]}, epoch {training.get('epoch')})",
                        activation=training.get("activation") or (meta.get("build") or {}).get("activation"))


def trained_parity(bundle: ModelBundle, fingerprint: dict) -> ModelBundle:
    """model.onnx on the checkpoint's fingerprint input against the logits the model gave at training time (not the
    rebuilt model's): parity["trained"] in bundle.json; ParityError beyond the fingerprint's tolerance."""
    from models.fingerprint import fingerprint_difference, fingerprint_inputs

    session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    inputs = fingerprint_inputs(bundle.spec.model_dump() | {"needs_scene": bundle.spec.needs_scene})
    (logits,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
    diff, tolerance = fingerprint_difference(fingerprint, torch.from_numpy(logits))
    if not diff <= tolerance:
        shutil.rmtree(bundle.directory)
        raise ParityError(f"model.onnx differs from the model as trained by {diff:.3g} (> {tolerance:.3g}) on the "
                          "checkpoint's fingerprint input; bundle not written")
    log.info("parity with the model as trained (checkpoint fingerprint): max abs diff %.3g", diff)
    spec = bundle.spec.model_copy(update={"parity": bundle.spec.parity | {"trained": float(f"{diff:.3g}")}})
    bundle = ModelBundle(bundle.directory, spec)
    bundle.write_spec()
    return bundle


def fp16_graph(path: Path) -> None:
    """Rewrite one graph with fp16 weights and arithmetic, fp32 inputs and outputs kept (the service feeds the same
    arrays)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True), str(path))


def convert_fp16(bundle: ModelBundle, model, inputs: dict, tolerance: float = FP16_TOLERANCE) -> ModelBundle:
    """Every graph of the bundle in fp16; model.onnx checked against PyTorch fp32 on `inputs`."""
    converted = rewrite_graphs(bundle, fp16_graph, precision="fp16")
    session = ort.InferenceSession(str(converted.onnx_path), providers=ort.get_available_providers())
    (logits,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
    diff = float(np.abs(logits - torch_logits(model, inputs)).max())
    if not diff <= tolerance:
        raise ParityError(f"fp16 graph differs from PyTorch fp32 by {diff:.3g} (> {tolerance:g})")
    spec = converted.spec.model_copy(update={"parity": converted.spec.parity | {"fp16": float(f"{diff:.3g}")}})
    converted = ModelBundle(converted.directory, spec)
    converted.write_spec()
    return converted


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
                      tolerance: float = DEFAULT_TOLERANCE, int8: bool = False, image_size: int | None = None,
                      min_agreement: float = MIN_AGREEMENT) -> ModelBundle:
    """`int8` and `image_size` make a cheaper bundle for CPUs; its agreement with the checkpoint's fp32 model on
    the real clip's face windows goes into bundle.json, and export fails below `min_agreement` (top-1)."""
    from models.checkpoint import load_model

    checkpoint = Path(checkpoint)
    model, meta = load_model(checkpoint, with_fingerprint=True)
    return export_trained_model(model, training_info(meta, checkpoint), out_dir, fp16=fp16, tensorrt=tensorrt,
                                opset=opset, real_clip=real_clip, tolerance=tolerance, int8=int8,
                                image_size=image_size, min_agreement=min_agreement,
                                crop=meta.get("training", {}).get("crop"), fingerprint=meta.get("fingerprint"),
                                calibration=meta.get("training", {}).get("calibration"))


def export_trained_model(model, training: TrainingInfo, out_dir: str | Path, fp16: bool = False,
                         tensorrt: bool = False, opset: int = DEFAULT_OPSET, real_clip: Path | None = None,
                         tolerance: float = DEFAULT_TOLERANCE, int8: bool = False, image_size: int | None = None,
                         min_agreement: float = MIN_AGREEMENT, crop: dict | None = None,
                         fingerprint: dict | None = None, calibration: dict | None = None) -> ModelBundle:
    """export_checkpoint's body for a trained model already in memory (a models.train checkpoint, or released
    weights converted onto a registered model, export/dfer_clip_release.py), with its provenance. `crop` (margin,
    align): how the training face crops were made (models.prepare's crop.json, kept in the checkpoint); it is
    declared in bundle.json so the service crops the same way, and the real parity windows are cut that way.
    `fingerprint`: the checkpoint's (models/fingerprint.py); the fp32 graph is checked against it, so parity is
    with the model as trained, not only as rebuilt (skipped when `image_size` changes the input)."""
    from models.registry import set_image_size

    if int8 and (fp16 or tensorrt):
        raise ValueError("--int8 is for CPUs; --fp16 and --tensorrt are for GPUs: choose one")
    model = model.eval()
    trained_size = model.bundle_cfg["image_size"]

    def crop_spec() -> CropSpec | None:  # at the size and colour the graph takes (after --image-size)
        if crop is None:
            return None
        return CropSpec(margin=crop["margin"], align=crop.get("align", "none"), size=model.bundle_cfg["image_size"],
                        colour="rgb" if model.bundle_cfg["channels"] == 3 else "grey")

    cheaper = int8 or (image_size is not None and image_size != model.bundle_cfg["image_size"])
    agreement_windows = real_face_windows(model.bundle_cfg, real_clip, AGREEMENT_WINDOWS, crop_spec()) if (
        cheaper and real_clip) else None
    reference = torch_probabilities(model, agreement_windows) if agreement_windows else None
    reference_name = f"fp32 PyTorch at {model.bundle_cfg['image_size']} px"
    if image_size is not None:
        set_image_size(model, image_size)
        if agreement_windows:  # the same faces, cropped at the new size
            agreement_windows = real_face_windows(model.bundle_cfg, real_clip, AGREEMENT_WINDOWS, crop_spec())
    # The parity windows are the first of the agreement windows (the same detector pass over the same clip).
    real = ({k: v[:PARITY_WINDOWS] for k, v in agreement_windows.items()} if agreement_windows else
            real_face_windows(model.bundle_cfg, real_clip, PARITY_WINDOWS, crop_spec()) if real_clip else None)
    bundle = export_bundle(model, out_dir, training=training,
                           backbone=model.bundle_cfg.get("backbone"), real_inputs=real, opset=opset,
                           tolerance=tolerance, crop=crop_spec(),
                           calibration=Calibration.model_validate(calibration) if calibration else None)
    if fingerprint is not None and model.bundle_cfg["image_size"] == trained_size:
        bundle = trained_parity(bundle, fingerprint)
    extra = {}
    if fp16:
        bundle = convert_fp16(bundle, model, real or random_inputs(model.bundle_cfg))
    if int8:
        bundle = quantize_bundle(bundle)
    if reference is not None:
        agreement = compare(bundle_probabilities(bundle, agreement_windows), reference, reference_name)
        log.info("agreement with %s on %d real windows: top-1 %.0f%%, max probability difference %.3g",
                 reference_name, agreement.windows, 100 * agreement.top1, agreement.max_prob_diff)
        if agreement.top1 < min_agreement:
            shutil.rmtree(bundle.directory)
            raise ParityError(f"the cheaper bundle agrees with {reference_name} on {agreement.top1:.0%} of "
                              f"{agreement.windows} real windows (< {min_agreement:.0%}); bundle not written")
        extra["agreement"] = agreement
    elif cheaper:
        log.warning("no real face windows (no --real-clip, or too few faces in it): agreement not measured")
    if tensorrt:
        build_tensorrt_engine(bundle, bundle.directory / "tensorrt")
        extra["tensorrt_cache"] = "tensorrt"
    if extra:
        spec = bundle.spec.model_copy(update=extra | {"sha256": file_sha256(bundle.directory / MODEL_ONNX)})
        bundle = ModelBundle(bundle.directory, spec)
        bundle.write_spec()
    ModelBundle.load(bundle.directory)  # what the service will do: must pass
    log.info("bundle.json: %s", json.dumps(json.loads((bundle.directory / BUNDLE_JSON).read_text())["parity"]))
    return bundle
