"""A bundle's temperature fitted on a labelled folder of face photographs the user names (models/data/
labelled_faces.py), written into its bundle.json (`calibration`); the service then divides the logits by it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.calibration import calibration_summary
from models.data.labelled_faces import LabelledFace, read_labelled_faces
from service.bundle import Calibration, ModelBundle
from service.inference.engine import normalise

log = logging.getLogger(__name__)


def window_logits(bundle: ModelBundle, crops: np.ndarray, batch: int = 8) -> np.ndarray:
    """model.onnx's logits for each crop [N, S, S, C] uint8 held still for a whole window (a photograph)."""
    spec = bundle.spec
    session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(crops), batch):
        windows = np.repeat(crops[i:i + batch][:, None], spec.num_frames, axis=1)
        out.append(session.run(["logits"], {"faces": normalise(windows, spec.mean, spec.std)})[0])
    return np.concatenate(out) if out else np.zeros((0, len(spec.labels)), np.float32)


def usable(faces: list[LabelledFace], labels: list[str]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(crops, label indices, photographs without a face, photographs whose label the model lacks)."""
    no_face = sum(f.crop is None for f in faces)
    other = sum(f.crop is not None and f.label not in labels for f in faces)
    kept = [f for f in faces if f.crop is not None and f.label in labels]
    crops = np.stack([f.crop for f in kept]) if kept else np.zeros((0, 1, 1, 1), np.uint8)
    return crops, np.array([labels.index(f.label) for f in kept], int), no_face, other


def calibrate_bundle(bundle: ModelBundle, folder: str | Path, whole_image: bool = False) -> ModelBundle:
    """Fit the bundle's temperature on FOLDER/<label>/<image> and write it into bundle.json."""
    spec = bundle.spec
    faces = read_labelled_faces(folder, spec.image_size, spec.channels, spec.crop, whole_image=whole_image)
    crops, targets, no_face, other = usable(faces, spec.labels)
    if len(targets) < 2:
        raise ValueError(f"{folder}: {len(targets)} usable photographs (of {len(faces)}; {no_face} without a face "
                         f"found, {other} with labels the model lacks): too few to fit a temperature")
    summary = calibration_summary(window_logits(bundle, crops), targets, f"{Path(folder).name} ({folder})")
    log.info("temperature %.3f fitted on %d photographs of %s (%d without a face, %d with other labels); ECE %.3f -> "
             "%.3f there", summary["temperature"], len(targets), folder, no_face, other, summary["ece_before"],
             summary["ece_after"])
    calibrated = ModelBundle(bundle.directory, spec.model_copy(update={"calibration": Calibration(**summary)}))
    calibrated.write_spec()
    return calibrated
