"""Real faces for detector checks, from photographs that installed packages ship (nothing downloaded):
scikit-image's astronaut (Eileen Collins, NASA, public domain) and cameraman (a face turned to the side), and
matplotlib's Grace Hopper portrait (public domain).

`group_frames` makes moving 640x480 footage of several people from them: faces of different sizes (down to distant
ones about 45 px high), tilted heads, a turned head, mirror images, each drifting a little from frame to frame. The
face boxes are known (each photo's face box, carried through the same placement), so a detector's hits and misses
can be counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Photo:
    name: str
    image: np.ndarray  # BGR
    face: tuple[int, int, int, int]  # x, y, w, h of the face (forehead to chin) in the photo


def real_photos() -> list[Photo]:
    from matplotlib import cbook
    from skimage import data

    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return [
        Photo("astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (172, 55, 105, 115)),
        Photo("grace_hopper", hopper, (180, 110, 170, 200)),
        Photo("cameraman", cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR), (180, 100, 80, 95)),
    ]


@dataclass(frozen=True)
class Person:
    photo: int  # index into real_photos()
    face_height: float  # px in the frame
    centre: tuple[float, float]  # where the face centre goes in the frame
    tilt: float  # degrees, head tilt (in-plane rotation)
    mirror: bool = False


# Five people: near and upright, tilted, turned (cameraman), and two distant ones (about the service's default
# min_face of 40 px).
CAST = (
    Person(0, 120, (150, 170), 0),
    Person(1, 100, (400, 150), 20),
    Person(2, 80, (560, 330), 0),
    Person(0, 48, (320, 380), -15, mirror=True),
    Person(1, 44, (445, 405), 0),
)


def _place(photo: Photo, person: Person, t: float) -> tuple[np.ndarray, np.ndarray]:
    """The 2x3 affine map from photo to frame for a person at time t (s): a slow sway of position and tilt."""
    x, y, w, h = photo.face
    scale = person.face_height / h
    tilt = person.tilt + 4 * math.sin(2 * math.pi * 0.3 * t + person.photo)
    cx = person.centre[0] + 12 * math.sin(2 * math.pi * 0.2 * t + person.centre[1])
    cy = person.centre[1] + 6 * math.cos(2 * math.pi * 0.25 * t)
    image = cv2.flip(photo.image, 1) if person.mirror else photo.image
    fx = photo.image.shape[1] - (x + w / 2) if person.mirror else x + w / 2
    matrix = cv2.getRotationMatrix2D((fx, y + h / 2), tilt, scale)
    matrix[:, 2] += (cx - fx, cy - (y + h / 2))
    return image, matrix


def group_frames(count: int = 40, fps: float = 8.0, size=(640, 480), cast=CAST):
    """(frame BGR, true face boxes [(x, y, w, h)]) for `count` frames at `fps`."""
    photos = real_photos()
    w, h = size
    background = cv2.GaussianBlur(cv2.resize(photos[2].image, size), (0, 0), 6)  # a soft real-photo backdrop
    for i in range(count):
        t = i / fps
        frame = background.copy()
        faces = []
        # Larger (nearer) people last, so they stand in front of distant ones.
        for person in sorted(cast, key=lambda p: p.face_height):
            photo = photos[person.photo]
            image, matrix = _place(photo, person, t)
            mask = np.zeros(image.shape[:2], np.uint8)  # head and shoulders only, not the whole photo
            x, y, fw, fh = photo.face
            if person.mirror:
                x = photo.image.shape[1] - x - fw
            mask[max(0, y - fh // 2):y + 2 * fh, max(0, x - fw // 2):x + fw + fw // 2] = 255
            warped = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_AREA)
            covered = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST) > 0
            frame[covered] = warped[covered]
            corners = np.array([[x, y], [x + fw, y], [x, y + fh], [x + fw, y + fh]], np.float32)
            mapped = corners @ matrix[:, :2].T + matrix[:, 2]
            x1, y1 = mapped.min(0)
            x2, y2 = mapped.max(0)
            faces.append((float(x1), float(y1), float(x2 - x1), float(y2 - y1)))
        yield frame, faces
