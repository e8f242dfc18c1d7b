"""A folder of labelled face photographs: FOLDER/<label>/<image> (jpg, png, bmp, tif), the label a folder name such
as angry, anger, happiness, scared, surprised (mapped onto the service's label names below). Used to measure a
bundle on real faces (`python -m models.evaluate faces`) and to fit a converted model's temperature on data the user
names (`python -m export per-frame ... --calibrate FOLDER`).

Each photograph's largest face is found by the service's default detector and cropped as a bundle declares its crops
(service.crops.declared_crop), so a photograph is read exactly as the live service would read a still face. With
`whole_image` the photographs are face crops already (CK+48's 48x48 faces, say): each is resized as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
# folder names people use -> the service's label names (models/text.py)
LABEL_NAMES = {
    "angry": "angry", "anger": "angry", "happy": "happy", "happiness": "happy", "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise", "fear": "fear", "fearful": "fear", "scared": "fear",
    "disgust": "disgust", "disgusted": "disgust", "neutral": "neutral", "contempt": "contempt",
}


class LabelledFolderError(ValueError):
    pass


@dataclass(frozen=True)
class LabelledFace:
    path: Path
    label: str  # the service's name
    crop: np.ndarray | None  # [size, size, channels] uint8 (RGB or grey); None: no face found


def label_of(folder_name: str) -> str:
    name = folder_name.strip().lower()
    if name not in LABEL_NAMES:
        raise LabelledFolderError(f"folder {folder_name!r} is not an emotion label (known: {', '.join(LABEL_NAMES)})")
    return LABEL_NAMES[name]


def list_labelled(folder: str | Path) -> list[tuple[Path, str]]:
    """(image, label) for every image under FOLDER/<label>/, sorted; a folder without any is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelledFolderError(f"labelled folder not found: {folder} (expected FOLDER/<label>/<image>)")
    items = [(path, label_of(sub.name)) for sub in sorted(p for p in folder.iterdir() if p.is_dir())
             for path in sorted(sub.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise LabelledFolderError(f"{folder} has no images in label folders (expected FOLDER/<label>/<image>)")
    return items


def read_labelled_faces(folder: str | Path, size: int, channels: int, crop=None, whole_image: bool = False,
                        detector=None) -> list[LabelledFace]:
    """Every image of the folder as a face crop the way a bundle with `crop` (service.bundle.CropSpec, or None for
    the service's margin) takes it."""
    from service.config import Settings
    from service.crops import declared_crop, to_channels

    settings = Settings(_env_file=None)
    policy = declared_crop(crop, size, channels, settings.face_margin)
    if detector is None and not whole_image:
        from service.detect import create_detector

        detector = create_detector(settings)
    faces = []
    for path, label in list_labelled(folder):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise LabelledFolderError(f"{path} is not an image OpenCV can read")
        if whole_image:
            interpolation = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
            faces.append(LabelledFace(path, label, to_channels(cv2.resize(image, (size, size),
                                                                          interpolation=interpolation), channels)))
            continue
        detections = detector.detect(image)
        if not detections:
            faces.append(LabelledFace(path, label, None))
            continue
        face = max(detections, key=lambda d: d.box[2] * d.box[3])
        faces.append(LabelledFace(path, label, policy.crop(image, face.box, face.landmarks)))
    return faces
