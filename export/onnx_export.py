"""Export a window classifier to a model bundle, checking the graph and ONNX Runtime's parity with PyTorch.

In the manner of timm's onnx_export: eval mode, named inputs and outputs, a dynamic batch axis, onnx.checker with
full_check, then the same inputs through ONNX Runtime and PyTorch; export fails if they differ by more than
`tolerance`.
"""

from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.fingerprint import random_inputs
from service.bundle import (MODEL_ONNX, BundleSpec, Calibration, CropSpec, FrameCacheSpec, ModelBundle, TensorSpec,
                            TrainingInfo, file_sha256)

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    pass


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: dict[str, float]  # input set name -> max |logits_onnx - logits_torch|
    tolerance: float


@contextmanager
def baked_text_features(model: torch.nn.Module) -> Iterator[bool]:
    """While exporting, a model's text features that depend only on learned prompts (a `text_features()` method
    without arguments) are computed once and enter the graph as a constant: the text encoder is not in the bundle.
    Text branches conditioned on the video take arguments and stay in the graph."""
    method = getattr(model, "text_features", None)
    if method is None or inspect.signature(method).parameters:
        yield False
        return
    with torch.no_grad():
        features = method().detach()
    model.text_features = lambda: features  # instance attribute shadows the method
    try:
        yield True
    finally:
        del model.text_features


def torch_logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model(inputs["faces"], inputs.get("scene")).numpy()


def check_parity(model: torch.nn.Module, onnx_path: Path, input_sets: dict[str, dict[str, torch.Tensor]],
                 tolerance: float = DEFAULT_TOLERANCE) -> ParityReport:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    diffs = {}
    for name, inputs in input_sets.items():
        (onnx_logits,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
        diffs[name] = float(np.abs(onnx_logits - torch_logits(model, inputs)).max())
        log.info("parity on %s inputs: max abs diff %.3g", name, diffs[name])
    worst = max(diffs.values())
    if not worst <= tolerance:  # also catches NaN
        raise ParityError(f"ONNX Runtime and PyTorch differ by {worst:.3g} (> {tolerance:g}) on "
                          f"{max(diffs, key=diffs.get)} inputs")
    return ParityReport(diffs, tolerance)


def export_frame_split(model: torch.nn.Module, staging: Path, example: dict[str, torch.Tensor], opset: int,
                       tolerance: float) -> FrameCacheSpec:
    """frame_encoder.onnx and window_head.onnx beside model.onnx; their composition must match the model. Scene-aware
    models encode scene frames with the same encoder, and their head takes both feature windows."""
    encoder, head = model.frame_split()
    streams = ["faces", "scene"] if "scene" in example else ["faces"]
    head_inputs = ["features", "scene_features"][:len(streams)]
    b, t = example["faces"].shape[:2]
    frames = {stream: example[stream].flatten(0, 1) for stream in streams}
    with torch.no_grad():
        features = tuple(encoder(frames[stream]).view(b, t, -1) for stream in streams)
    enc_path, head_path = staging / "frame_encoder.onnx", staging / "window_head.onnx"
    torch.onnx.export(encoder.eval(), (frames["faces"],), str(enc_path), dynamo=False, opset_version=opset,
                      input_names=["frames"], output_names=["features"],
                      dynamic_axes={"frames": {0: "frames"}, "features": {0: "frames"}})
    torch.onnx.export(head.eval(), features, str(head_path), dynamo=False, opset_version=opset,
                      input_names=head_inputs, output_names=["logits"],
                      dynamic_axes={name: {0: "batch"} for name in head_inputs} | {"logits": {0: "batch"}})
    enc = ort.InferenceSession(str(enc_path), providers=["CPUExecutionProvider"])
    hd = ort.InferenceSession(str(head_path), providers=["CPUExecutionProvider"])
    feeds = {name: enc.run(["features"], {"frames": frames[stream].numpy()})[0].reshape(b, t, -1)
             for name, stream in zip(head_inputs, streams)}
    (logits,) = hd.run(["logits"], feeds)
    diff = float(np.abs(logits - torch_logits(model, example)).max())
    if not diff <= tolerance:
        raise ParityError(f"frame encoder + window head differ from the model by {diff:.3g} (> {tolerance:g})")
    return FrameCacheSpec(feature_dim=int(feeds["features"].shape[-1]), encoder_sha256=file_sha256(enc_path),
                          head_sha256=file_sha256(head_path))


def export_bundle(model: torch.nn.Module, out_dir: str | Path, training: TrainingInfo | None = None,
                  backbone: str | None = None, real_inputs: dict[str, torch.Tensor] | None = None,
                  opset: int = DEFAULT_OPSET, tolerance: float = DEFAULT_TOLERANCE,
                  crop: CropSpec | None = None, calibration: Calibration | None = None) -> ModelBundle:
    """Write model.onnx and bundle.json for a model carrying `bundle_cfg` (see models/); `crop`: how its training
    crops were made; `calibration`: its temperature (fitted at the end of training). The bundle appears at out_dir only once it passed every check, so a failed export never
    leaves a half-written bundle behind."""
    model = model.eval()
    cfg = model.bundle_cfg
    out_dir = Path(out_dir)
    example = random_inputs(cfg)
    names = list(example)
    dynamic = {name: {0: "batch"} for name in names} | {"logits": {0: "batch"}}
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        onnx_path = staging / MODEL_ONNX
        args = tuple(example[name] for name in names)
        with baked_text_features(model) as baked:
            torch.onnx.export(model, args, str(onnx_path), dynamo=False, opset_version=opset, input_names=names,
                              output_names=["logits"], dynamic_axes=dynamic)
            # Inside the bake too: the head compares with the same constant text features.
            frame_cache = export_frame_split(model, staging, example, opset, tolerance) if hasattr(
                model, "frame_split") else None
        onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
        input_sets = {"random": example}
        if real_inputs is not None:
            input_sets["real"] = real_inputs
        parity = check_parity(model, onnx_path, input_sets, tolerance)
        shape = ["batch", cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"]]
        spec = BundleSpec(
            name=cfg["name"], method=cfg["method"], labels=cfg["labels"], num_frames=cfg["num_frames"],
            image_size=cfg["image_size"], channels=cfg["channels"], mean=cfg["mean"], std=cfg["std"],
            inputs=[TensorSpec(name=name, shape=shape) for name in names],
            output=TensorSpec(name="logits", shape=["batch", len(cfg["labels"])]),
            opset=opset, backbone=backbone, trained_on=training or TrainingInfo(),
            sha256=file_sha256(onnx_path), parity={k: float(f"{v:.3g}") for k, v in parity.max_abs_diff.items()},
            text_features="baked" if baked else "none", frame_cache=frame_cache, crop=crop, calibration=calibration,
        )
        bundle = ModelBundle(staging, spec)
        bundle.write_spec()
        ModelBundle.load(staging)  # what the service will do: must pass
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out_dir))
    log.info("bundle %s written to %s (parity %s)", spec.name, out_dir, spec.parity)
    return ModelBundle(out_dir, spec)


def rewrite_graphs(bundle: ModelBundle, rewrite: Callable[[Path], None], **update) -> ModelBundle:
    """Apply `rewrite` (in place) to model.onnx and the frame-cache graphs, then write bundle.json with their new
    sha256 and `update`: every graph of a bundle gets the same precision."""
    spec = bundle.spec
    rewrite(bundle.onnx_path)
    update["sha256"] = file_sha256(bundle.onnx_path)
    if spec.frame_cache is not None:
        for name in (spec.frame_cache.encoder, spec.frame_cache.head):
            rewrite(bundle.directory / name)
        update["frame_cache"] = spec.frame_cache.model_copy(update={
            "encoder_sha256": file_sha256(bundle.directory / spec.frame_cache.encoder),
            "head_sha256": file_sha256(bundle.directory / spec.frame_cache.head)})
    rewritten = ModelBundle(bundle.directory, spec.model_copy(update=update))
    rewritten.write_spec()
    return rewritten
