"""Real face windows for parity checks: cut from a clip by the service's own face loop (service.pipeline.ClipFaces:
decode, sample, detect, track, crop) and normalisation, so export checks the model on what it will see in
service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def real_face_crops(clip: Path, size: int, channels: int, crop=None, max_crops: int = 32
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(face crops, scene crops), uint8 [size, size, channels]: the largest face of up to max_crops sampled frames
    of the clip, cropped by `crop` (a service.bundle.CropSpec: how the bundle will declare its crops; default the
    service's margin) by the service's own face loop."""
    from service.config import Settings
    from service.crops import crop_scene, declared_crop
    from service.detect import create_detector
    from service.pipeline import ClipFaces, FacePipeline
    from service.track import create_tracker

    # The service's default detector; every sampled frame with a face counts (no track confirmation delay).
    settings = Settings(_env_file=None, track_min_hits=1, tracker="iou")
    policy = declared_crop(crop, size, channels, settings.face_margin)
    pipeline = FacePipeline("export", None, settings, create_detector(settings), create_tracker(settings),
                            crop=policy)
    faces, scenes = [], []
    for frame, result in ClipFaces(clip, pipeline, settings.sample_fps):
        if len(faces) >= max_crops:
            break
        if result.crops:
            faces.append(max(result.crops, key=lambda c: c.box[2] * c.box[3]).crop)
            scenes.append(crop_scene(frame.image, size, channels))
    return faces, scenes


def real_face_windows(cfg: dict, clip: Path, max_windows: int = 2, crop=None) -> dict[str, torch.Tensor] | None:
    """Up to max_windows consecutive windows of the largest face (and scene crops where the model needs them),
    cropped as real_face_crops does and normalised as the service normalises them; None if the clip has too few
    face frames."""
    from service.inference.engine import normalise

    size, channels, frames = cfg["image_size"], cfg["channels"], cfg["num_frames"]
    faces, scenes = real_face_crops(clip, size, channels, crop, max_windows * frames)
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


def real_photo_crops(size: int, channels: int, margins: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4)) -> list[np.ndarray]:
    """Face crops (uint8, RGB or grey as the service crops them) of the real photographs the service's footage is
    made from (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper; service/footage/people.py) and of
    the astronaut edited to look surprised: each at several margins, mirrored, darker and brighter. Their labels
    differ (happy, neutral, surprise, ...), so a parity check on them is not one saturated probability."""
    import cv2

    from service.crops import crop_face
    from service.footage.expressions import SURPRISE, expression_photos
    from service.footage.people import real_photos

    photos = [(p.image, p.face) for p in real_photos()] + [(expression_photos()[SURPRISE], real_photos()[0].face)]
    crops = []
    for image, box in photos:
        crops += [crop_face(image, box, size, channels, margin) for margin in margins]
        x, _, w, _ = box
        crops.append(crop_face(cv2.flip(image, 1), (image.shape[1] - x - w, *box[1:]), size, channels))
        crops += [crop_face(cv2.convertScaleAbs(image, alpha=a), box, size, channels) for a in (0.5, 1.4)]
    return crops
