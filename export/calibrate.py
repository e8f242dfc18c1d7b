"""A bundle's temperature fitted on a labelled folder of face photographs the user names (models/data/
labelled_faces.py), written into its bundle.json (`calibration`); the service then divides the logits by it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.calibration import calibration_summary
from models.data.labelled_faces import read_labelled_faces
from models.faces_eval import usable, window_logits
from service.bundle import Calibration, ModelBundle

log = logging.getLogger(__name__)


def calibrate_bundle(bundle: ModelBundle, folder: str | Path, whole_image: bool = False) -> ModelBundle:
    """Fit the bundle's temperature on FOLDER/<label>/<image> and write it into bundle.json."""
    spec = bundle.spec
    faces = read_labelled_faces(folder, spec.image_size, spec.channels, spec.crop, whole_image=whole_image)
    keep, no_face, other = usable(faces, spec.labels)
    if len(keep) < 2:
        raise ValueError(f"{folder}: {len(keep)} usable photographs (of {len(faces)}; {no_face} without a face "
                         f"found, {other} with labels the model lacks): too few to fit a temperature")
    logits = window_logits(bundle, np.stack([faces[i].crop for i in keep]))
    targets = np.array([spec.labels.index(faces[i].label) for i in keep], int)
    summary = calibration_summary(logits, targets, Path(folder).name)
    log.info("temperature %.3f fitted on %d photographs of %s (%d without a face, %d with other labels); ECE %.3f -> "
             "%.3f there", summary["temperature"], len(keep), folder, no_face, other, summary["ece_before"],
             summary["ece_after"])
    calibrated = ModelBundle(bundle.directory, spec.model_copy(update={"calibration": Calibration(**summary)}))
    calibrated.write_spec()
    return calibrated
