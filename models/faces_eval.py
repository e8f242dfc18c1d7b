"""Bundles on a folder of labelled face photographs (models/data/labelled_faces.py): each photograph held still for a
whole window, as the live service reads a still face; UAR/WAR, per-class recall, the confusion matrix and the
expected calibration error at T=1 and at the bundle's temperature; and, for several bundles, their average (the
mean of their probabilities over the labels they share)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.calibration import expected_calibration_error, softmax
from models.data.labelled_faces import LabelledFace, read_labelled_faces
from models.metrics import summarise
from service.bundle import ModelBundle
from service.inference.engine import normalise


def window_logits(bundle: ModelBundle, crops: np.ndarray, batch: int = 8) -> np.ndarray:
    """model.onnx's logits for each crop [N, S, S, C] uint8 held still for a whole window (a photograph)."""
    spec = bundle.spec
    session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(crops), batch):
        windows = np.repeat(crops[i:i + batch][:, None], spec.num_frames, axis=1)
        out.append(session.run(["logits"], {"faces": normalise(windows, spec.mean, spec.std)})[0])
    return np.concatenate(out) if out else np.zeros((0, len(spec.labels)), np.float32)


def usable(faces: list[LabelledFace], labels: list[str]) -> tuple[list[int], int, int]:
    """(indices of photographs with a face found and a label the model has, how many had no face found, how many
    carry a label the model lacks)."""
    no_face = sum(f.crop is None for f in faces)
    other = sum(f.crop is not None and f.label not in labels for f in faces)
    return [i for i, f in enumerate(faces) if f.crop is not None and f.label in labels], no_face, other


def _metrics(probs_t1: np.ndarray, probs: np.ndarray, targets: np.ndarray, labels: list[str], keep: bool) -> dict:
    metrics = summarise(targets, probs.argmax(1), labels)
    metrics |= {"ece_t1": expected_calibration_error(probs_t1, targets), "ece": expected_calibration_error(probs, targets)}
    return metrics | ({"_probs_t1": probs_t1, "_probs": probs, "_targets": targets} if keep else {})


def evaluate_on_faces(bundle_dirs: list[Path], folder: Path, whole_image: bool = False, average: bool = True,
                      keep_probs: bool = False) -> dict:
    """{"folder", "photos", "models": {name: metrics}, "average": metrics | None, "per_photo": [...]} with, per
    model, its temperature and where it was fitted (a temperature fitted on this very folder is flagged).
    `keep_probs`: each entry also carries its probabilities and targets (`_probs_t1`, `_probs`, `_targets`)."""
    bundles = [ModelBundle.load(d) for d in bundle_dirs]
    results, per_model = {}, {}
    photos: list[Path] | None = None
    for bundle in bundles:
        spec = bundle.spec
        faces = read_labelled_faces(folder, spec.image_size, spec.channels, spec.crop, whole_image=whole_image)
        photos = [f.path for f in faces]
        keep, no_face, other = usable(faces, spec.labels)
        logits = window_logits(bundle, np.stack([faces[i].crop for i in keep])) if keep else np.zeros(
            (0, len(spec.labels)))
        targets = np.array([spec.labels.index(faces[i].label) for i in keep], int)
        t1, calibrated = softmax(logits), softmax(logits, spec.temperature)
        fitted_here = bool(spec.calibration and Path(folder).name in spec.calibration.fitted_on)
        results[spec.name] = _metrics(t1, calibrated, targets, spec.labels, keep_probs) | {
            "no_face": no_face, "other_label": other, "temperature": spec.temperature,
            "temperature_fitted_on": spec.calibration.fitted_on if spec.calibration else None,
            "temperature_fitted_here": fitted_here}
        per_model[spec.name] = (faces, keep, calibrated, t1)
    summary = {"folder": str(folder), "photos": len(photos or []), "whole_image": whole_image, "models": results,
               "average": None}
    if average and len(bundles) > 1:
        shared = [label for label in bundles[0].spec.labels if all(label in b.spec.labels for b in bundles)]
        common = set.intersection(*(set(keep) for _, keep, _, _ in per_model.values()))
        order = sorted(common)
        if order:
            def mapped(name: str, which: int) -> np.ndarray:
                faces, keep, calibrated, t1 = per_model[name]
                probs = (calibrated, t1)[which]
                rows = probs[[keep.index(i) for i in order]]
                labels = next(b.spec.labels for b in bundles if b.spec.name == name)
                cols = rows[:, [labels.index(label) for label in shared]]
                return cols / cols.sum(1, keepdims=True)

            names = list(per_model)
            probs = np.mean([mapped(n, 0) for n in names], axis=0)
            t1 = np.mean([mapped(n, 1) for n in names], axis=0)
            faces = per_model[names[0]][0]
            targets = np.array([shared.index(faces[i].label) for i in order], int)
            summary["average"] = _metrics(t1, probs, targets, shared, keep_probs) | {"of": names}
    return summary
