"""Scenes a robot's camera sees, from photographs that scikit-image and matplotlib ship (nothing downloaded).

- `empty_scenes`: footage with nobody in it: landscapes (terrain relief, the moon, a launch site), objects (coffee,
  a motorcycle, a clock), textures (brick, grass, gravel), text (a printed page), an animal's body (a horse's
  silhouette), crowds of small objects (coins, the Hubble deep field's galaxies, cells), each panned across and
  zoomed into, 640x480 at 8 fps: no track may be born on any of it.
- `portrait_stills`: one person at conversation distance (a face 150 to 260 px high in a 640x480 frame), a
  photograph held still in front of the camera (the frame repeats with a little sensor noise): exactly one track.
- `portrait_before_building`: a woman's head and shoulders (the astronaut photograph, cut out with a soft oval) in
  front of a blurred building-like photograph, the scene where BlazeFace short range once took the building for a
  second, larger face.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

FRAME_SIZE = (640, 480)
FPS = 8.0


def _skimage(name: str) -> np.ndarray:
    """A scikit-image photograph as BGR uint8 (grey and RGBA ones converted; transparency on white)."""
    from skimage import data

    image = getattr(data, name)()
    if image.dtype == bool:  # the horse's silhouette
        image = np.where(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255
        image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _terrain() -> np.ndarray:
    """A landscape: matplotlib's Jacksboro fault elevation sample (real terrain data), hill-shaded."""
    from matplotlib import cbook, colormaps
    from matplotlib.colors import LightSource

    with cbook.get_sample_data("jacksboro_fault_dem.npz") as dem:
        elevation = dem["elevation"].astype(np.float64)
    rgb = LightSource(azdeg=315, altdeg=45).shade(elevation, cmap=colormaps["gist_earth"], blend_mode="soft",
                                                   vert_exag=0.1)
    return cv2.cvtColor((rgb[..., :3] * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


# name -> BGR photograph. Nobody is in any of them.
EMPTY_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "terrain": _terrain,
    "moon": lambda: _skimage("moon"),
    "rocket": lambda: _skimage("rocket"),
    "coffee": lambda: _skimage("coffee"),
    "motorcycle": lambda: cv2.cvtColor(_stereo_left(), cv2.COLOR_RGB2BGR),
    "clock": lambda: _skimage("clock"),
    "brick": lambda: _skimage("brick"),
    "grass": lambda: _skimage("grass"),
    "gravel": lambda: _skimage("gravel"),
    "page": lambda: _skimage("page"),
    "horse": lambda: _skimage("horse"),
    "coins": lambda: _skimage("coins"),
    "hubble_deep_field": lambda: _skimage("hubble_deep_field"),
    "cells": lambda: _skimage("cell"),
    "retina": lambda: _skimage("retina"),
}


def _stereo_left() -> np.ndarray:
    from skimage import data

    return data.stereo_motorcycle()[0]


@dataclass(frozen=True)
class Scene:
    name: str
    frames: list[np.ndarray]  # BGR, FRAME_SIZE
    # True face boxes per frame (x, y, w, h), the same people in the same order in every frame; None where one is
    # out of view.
    faces: list[list[tuple[float, float, float, float] | None]]

    @property
    def seconds(self) -> float:
        return len(self.frames) / FPS


def view_matrix(photo_size: tuple[int, int], centre: tuple[float, float], zoom: float,
                size=FRAME_SIZE) -> np.ndarray:
    """The 2x3 map from photo to frame of a camera looking at `centre` (fractions of the photo of (width, height)
    `photo_size`) with `zoom`: 1 shows the photo's largest frame-shaped region that fits, larger zooms in."""
    w, h = photo_size
    fw, fh = size
    scale = max(fw / w, fh / h) * zoom  # photo px -> frame px; at zoom 1 the photo just covers the frame
    cx, cy = centre[0] * w, centre[1] * h
    half_w, half_h = fw / 2 / scale, fh / 2 / scale
    cx, cy = min(max(cx, half_w), w - half_w), min(max(cy, half_h), h - half_h)  # never past the photo's edges
    return np.array([[scale, 0, fw / 2 - scale * cx], [0, scale, fh / 2 - scale * cy]], np.float64)


def _view(photo: np.ndarray, centre: tuple[float, float], zoom: float, size=FRAME_SIZE) -> np.ndarray:
    """The frame a camera sees looking at `centre` with `zoom` (view_matrix)."""
    matrix = view_matrix((photo.shape[1], photo.shape[0]), centre, zoom, size)
    return cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_LINEAR if matrix[0, 0] > 1 else cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REFLECT)


def _noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """A camera's sensor noise: consecutive frames of a still scene are never identical."""
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def empty_scenes(frames: int = 24, names: tuple[str, ...] | None = None) -> Iterator[Scene]:
    """Per photograph of EMPTY_PHOTOS two scenes of `frames` frames (panned_and_zoomed)."""
    photos = {name: EMPTY_PHOTOS[name] for name in names or tuple(EMPTY_PHOTOS)}
    yield from panned_and_zoomed(photos, frames, seed=27)


def panned_and_zoomed(photos: dict[str, Callable[[], np.ndarray]], frames: int, seed: int) -> Iterator[Scene]:
    """Per photograph two scenes of `frames` frames with nobody in them: a slow pan across it at 1.6x zoom, and a
    zoom from the whole photo to 2.5x on a point off its centre."""
    rng = np.random.default_rng(seed)
    for name, make in photos.items():
        photo = make()
        steps = np.linspace(0, 1, frames)
        pan = [_noisy(_view(photo, (0.2 + 0.6 * s, 0.4 + 0.2 * math.sin(math.pi * s)), 1.6), rng) for s in steps]
        zoom = [_noisy(_view(photo, (0.45, 0.55), 2.5 ** s), rng) for s in steps]
        yield Scene(f"{name} pan", pan, [[] for _ in pan])
        yield Scene(f"{name} zoom", zoom, [[] for _ in zoom])


@dataclass(frozen=True)
class Portrait:
    photo: str  # "astronaut" or "grace_hopper" (service.footage.people.real_photos' names)
    face_height: float  # px in the 640x480 frame
    centre_x: float  # where the face centre goes, fraction of the frame width
    mirror: bool = False


# Conversation distance: at about 0.6 to 1.2 m a webcam's 640x480 frame shows a face 150 to 260 px high.
PORTRAITS = (
    Portrait("astronaut", 170, 0.5),
    Portrait("astronaut", 240, 0.42, mirror=True),
    Portrait("grace_hopper", 160, 0.55),
    Portrait("grace_hopper", 220, 0.45, mirror=True),
    Portrait("astronaut", 150, 0.3),
    Portrait("grace_hopper", 260, 0.6),
)


def _portrait_frame(photo, portrait: Portrait, size=FRAME_SIZE) -> tuple[np.ndarray, tuple[float, ...]]:
    """The photograph scaled so its face is `face_height` px and placed at (centre_x, 0.42 of the height)."""
    image, (x, y, w, h) = photo.image, photo.face
    if portrait.mirror:
        image, x = cv2.flip(image, 1), image.shape[1] - x - w
    scale = portrait.face_height / h
    fw, fh = size
    tx, ty = portrait.centre_x * fw - scale * (x + w / 2), 0.42 * fh - scale * (y + h / 2)
    matrix = np.array([[scale, 0, tx], [0, scale, ty]], np.float64)
    frame = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return frame, (scale * x + tx, scale * y + ty, scale * w, scale * h)


def portrait_stills(frames: int = 24, portraits: tuple[Portrait, ...] = PORTRAITS) -> Iterator[Scene]:
    """One person per scene, held still (sensor noise only): exactly one face, its box known."""
    from service.footage.people import real_photos

    photos = {p.name: p for p in real_photos()}
    rng = np.random.default_rng(3)
    for p in portraits:
        frame, face = _portrait_frame(photos[p.photo], p)
        yield Scene(f"{p.photo} {p.face_height:.0f}px{' mirrored' if p.mirror else ''}",
                    [_noisy(frame, rng) for _ in range(frames)], [[face]] * frames)


def portrait_before_building(frames: int = 24, background: str = "rocket", blur: float = 4.0,
                             face_height: float = 150, centre_x: float = 0.62) -> Scene:
    """A woman (the astronaut's head and shoulders inside a soft oval) in front of `background` (a photograph of
    EMPTY_PHOTOS, blurred by a Gaussian of `blur` px, as a portrait lens blurs what is behind its subject)."""
    from service.footage.people import real_photos

    astronaut = next(p for p in real_photos() if p.name == "astronaut")
    person, face = _portrait_frame(astronaut, Portrait("astronaut", face_height, centre_x))
    x, y, w, h = face
    mask = np.zeros(person.shape[:2], np.float32)
    cv2.ellipse(mask, (round(x + w / 2), round(y + 0.9 * h)), (round(1.1 * w), round(1.6 * h)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), w / 12)[..., None]
    backdrop = cv2.GaussianBlur(_view(EMPTY_PHOTOS[background](), (0.5, 0.5), 1.0), (0, 0), blur)
    still = (person * mask + backdrop * (1 - mask)).astype(np.uint8)
    rng = np.random.default_rng(5)
    return Scene(f"astronaut before blurred {background}", [_noisy(still, rng) for _ in range(frames)],
                 [[face]] * frames)
