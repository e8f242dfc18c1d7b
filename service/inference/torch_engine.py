"""The PyTorch backend, for research: runs a models.train checkpoint directly, without exporting it first. Same
interface as OnnxEngine (the Engine protocol, service/inference/base.py); needs the research extra (torch)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from service.bundle import BundleSpec, Calibration, ModelBundle, TensorSpec, TrainingInfo
from service.errors import BundleError
from service.inference.engine import FrameFeatureCache, normalise, probabilities
from service.windows import Window

log = logging.getLogger(__name__)


def spec_from_model(cfg: dict, meta: dict, checkpoint: Path) -> BundleSpec:
    """A bundle.json-like description of a checkpoint's model, so the service treats it like a bundle."""
    shape = ["batch", cfg["num_frames"], cfg["channels"], cfg["image_size"], cfg["image_size"]]
    inputs = [TensorSpec(name="faces", shape=shape)]
    if cfg.get("needs_scene"):
        inputs.append(TensorSpec(name="scene", shape=shape))
    training = meta.get("training", {})
    metrics = training.get("metrics") or {}
    calibration = training.get("calibration")
    return BundleSpec(name=cfg["name"], method=cfg["method"], labels=cfg["labels"], num_frames=cfg["num_frames"],
                      image_size=cfg["image_size"], channels=cfg["channels"], mean=cfg["mean"], std=cfg["std"],
                      inputs=inputs, output=TensorSpec(name="logits", shape=["batch", len(cfg["labels"])]),
                      opset=0, backbone=cfg.get("backbone"), sha256=meta["sha256"],
                      trained_on=TrainingInfo(dataset=training.get("dataset"), fold=training.get("fold"),
                                              uar=metrics.get("uar"), war=metrics.get("war"),
                                              source=f"checkpoint {checkpoint.name}"),
                      calibration=Calibration.model_validate(calibration) if calibration else None)


class TorchEngine:
    def __init__(self, checkpoint: str | Path, device: str = "cpu"):
        try:
            import torch
        except ImportError:
            raise BundleError("the pytorch backend needs torch: pip install -e '.[research]'") from None
        from models.checkpoint import CheckpointError, load_model

        checkpoint = Path(checkpoint)
        try:
            model, meta = load_model(checkpoint)
        except CheckpointError as exc:
            raise BundleError(str(exc)) from None
        if device.startswith("cuda") and not torch.cuda.is_available():
            log.warning("!!! PyTorch backend asked for %s, but CUDA is not available: running on the CPU", device)
            device = "cpu"
        self.torch, self.device = torch, device
        self.model = model.to(device).eval()
        self.spec = spec_from_model(model.bundle_cfg, meta, checkpoint)
        self.bundle = ModelBundle(checkpoint.parent, self.spec)
        self.providers = [f"PyTorch ({device})"]
        self.encoder = None  # no frame cache: the checkpoint runs whole
        log.info("model %s (%s) from %s on PyTorch %s", self.spec.name, self.spec.method, checkpoint, device)

    @property
    def labels(self) -> list[str]:
        return self.spec.labels

    def predict(self, faces: np.ndarray, scene: np.ndarray | None = None) -> np.ndarray:
        torch = self.torch
        spec = self.spec
        x = torch.from_numpy(normalise(faces, spec.mean, spec.std)).to(self.device)
        s = torch.from_numpy(normalise(scene, spec.mean, spec.std)).to(self.device) if spec.needs_scene else None
        if spec.needs_scene and scene is None:
            raise ValueError(f"model {spec.name} needs scene crops")
        with torch.no_grad():
            logits = self.model(x, s).float().cpu().numpy()
        return probabilities(logits, spec)

    def predict_windows(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None
                        ) -> np.ndarray:
        faces = np.stack([w.faces for _, w in items])
        scene = np.stack([w.scene for _, w in items]) if items[0][1].scene is not None else None
        return self.predict(faces, scene)
