"""Real face windows for parity checks: cut from a clip by the service's own stages (detector, crops,
normalisation), so export checks the model on what it will see in service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def real_face_windows(cfg: dict, clip: Path, max_windows: int = 2) -> dict[str, torch.Tensor] | None:
    """Up to max_windows consecutive windows of the largest face (and scene crops where the model needs them),
    normalised as the service normalises them; None if the clip has too few face frames."""
    from service.config import Settings
    from service.crops import crop_face, crop_scene
    from service.detect import create_detector
    from service.inference.engine import normalise
    from service.ingest import ClipDecoder, FrameSampler

    settings = Settings(_env_file=None, detector="haar")
    detector, sampler = create_detector(settings), FrameSampler(settings.sample_fps)
    size, channels, frames = cfg["image_size"], cfg["channels"], cfg["num_frames"]
    faces, scenes = [], []
    for frame in ClipDecoder(clip):
        if len(faces) >= max_windows * frames:
            break
        if sampler.accept(frame.t) and (found := detector.detect(frame.image)):
            faces.append(crop_face(frame.image, found[0].box, size, channels, settings.face_margin))
            scenes.append(crop_scene(frame.image, size, channels))
    count = min(max_windows, len(faces) // frames)
    if count == 0:
        return None

    def windows(crops: list[np.ndarray]) -> torch.Tensor:
        stacked = np.stack([np.stack(crops[i * frames:(i + 1) * frames]) for i in range(count)])
        return torch.from_numpy(normalise(stacked, cfg["mean"], cfg["std"]))

    inputs = {"faces": windows(faces)}
    if cfg.get("needs_scene"):
        inputs["scene"] = windows(scenes)
    return inputs
