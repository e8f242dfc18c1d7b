"""Footage held apart from the footage the phantom-face checks were tuned on (service/footage/scenes.py's
EMPTY_PHOTOS, portraits and groups of three people, and the sample clip): other photographs that scikit-image and
matplotlib ship, and other people. The thresholds of docs/DETECTION.md were chosen before any of it was looked at;
the figures the README gives for phantoms and recall are measured here (bench phantoms, "held out").

- `held_out_empty_scenes`: nobody in view: a cat's face (Chelsea), a stained tissue section, text, two logos, a
  colour wheel, a retina's vessels, the Shepp-Logan head phantom (ellipses in a head's outline), a shaded map of
  ocean depth, a photographed parcel, the other eye of the motorcycle stereo pair, and a mosaic of the 100 non-face
  patches of scikit-image's LFW subset; panned and zoomed as EMPTY_PHOTOS are.
- `held_out_people`: the 100 faces of scikit-image's LFW subset (Labeled Faces in the Wild: 100 people none of whom
  is in the tuning footage; 25x25 grey crops scaled to 64-160 px), four to a frame, swaying slowly in front of a
  blurred held-out photograph; their boxes known.
- `group_photos`: the six photographs of groups of three to five people (22 in all, indoors, real heads with hair
  and shoulders) that npm's `@vladmandic/face-api` 1.7.15 ships in its demo/ folder (MIT package; installed at
  build time into .cache/faceapi-node by the Makefile, never committed here), each seen whole (faces 53-83 px in
  640x480) and panned across at 1.8x (faces 95-150 px). Their face boxes (GROUP_FACES) were drawn for this
  footage: BlazeFace full range's proposals on the full-size photographs, each checked by eye (one proposal on a
  hand dropped), and the one face it missed (a profile, sample2) drawn by eye.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from service.footage.scenes import FRAME_SIZE, Scene, _noisy, _skimage, _view, panned_and_zoomed, view_matrix

FACE_API_DEMO = (Path(__file__).resolve().parents[2] / ".cache" / "faceapi-node" / "node_modules" / "@vladmandic"
                 / "face-api" / "demo")
# Face boxes (x, y, w, h) in pixels of each full-size demo photograph (1920 px wide), every person in it.
GROUP_FACES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "sample1.jpg": ((1476, 236, 172, 172), (387, 373, 198, 198), (826, 443, 191, 191)),
    "sample2.jpg": ((1430, 170, 199, 199), (899, 250, 184, 184), (350, 190, 190, 200)),  # the last: a profile
    "sample3.jpg": ((568, 351, 212, 212), (1048, 235, 235, 235), (1482, 316, 241, 241)),
    "sample4.jpg": ((1259, 189, 164, 164), (274, 237, 164, 164), (648, 103, 182, 182), (953, 203, 190, 190)),
    "sample5.jpg": ((796, 134, 175, 175), (1098, 233, 181, 181), (629, 452, 163, 163), (1375, 413, 221, 221),
                    (352, 897, 245, 245)),
    "sample6.jpg": ((1161, 332, 233, 233), (634, 360, 233, 233), (253, 503, 244, 244), (1455, 287, 251, 251)),
}


def _float_grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _ocean_depth() -> np.ndarray:
    """matplotlib's topobathy sample (real elevation and ocean depth), hill-shaded."""
    from matplotlib import cbook, colormaps
    from matplotlib.colors import LightSource

    with cbook.get_sample_data("topobathy.npz") as dem:
        elevation = dem["topo"].astype(np.float64)
    rgb = LightSource(azdeg=315, altdeg=45).shade(elevation, cmap=colormaps["terrain"], blend_mode="soft")
    return cv2.cvtColor((rgb[..., :3] * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _matplotlib_photo(name: str) -> np.ndarray:
    from matplotlib import cbook

    image = cv2.imread(str(cbook.get_sample_data(name, asfileobj=False)), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255
        image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return image


def _lfw(faces: bool) -> np.ndarray:
    from skimage import data

    patches = data.lfw_subset()  # the first 100 are faces, the next 100 are not
    return patches[:100] if faces else patches[100:]


def _non_face_mosaic() -> np.ndarray:
    """The LFW subset's 100 non-face patches, 10 x 10, each 60 px."""
    tiles = [cv2.resize(p, (60, 60), interpolation=cv2.INTER_CUBIC) for p in _lfw(faces=False)]
    return _float_grey(np.vstack([np.hstack(tiles[r * 10:(r + 1) * 10]) for r in range(10)]))


def _motorcycle_right() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.stereo_motorcycle()[1], cv2.COLOR_RGB2BGR)


# name -> BGR photograph. Nobody is in any of them; none is in the tuning footage.
HELD_OUT_EMPTY_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "cat": lambda: _skimage("chelsea"),
    "tissue": lambda: _skimage("immunohistochemistry"),
    "text": lambda: _skimage("text"),
    "logo": lambda: _skimage("logo"),
    "matplotlib logo": lambda: _matplotlib_photo("logo2.png"),
    "colour wheel": lambda: _skimage("colorwheel"),
    "microaneurysms": lambda: _skimage("microaneurysms"),
    "head phantom": lambda: _float_grey(__import__("skimage.data", fromlist=["x"]).shepp_logan_phantom()),
    "ocean depth": _ocean_depth,
    "parcel": lambda: _matplotlib_photo("Minduka_Present_Blue_Pack.png"),
    "motorcycle (right eye)": _motorcycle_right,
    "non-face patches": _non_face_mosaic,
}


def held_out_empty_scenes(frames: int = 24, names: tuple[str, ...] | None = None) -> Iterator[Scene]:
    """Per held-out photograph a pan and a zoom, as service.footage.scenes.empty_scenes makes them."""
    photos = {name: HELD_OUT_EMPTY_PHOTOS[name] for name in names or tuple(HELD_OUT_EMPTY_PHOTOS)}
    yield from panned_and_zoomed(photos, frames, seed=41)


FACE_SIDES = (64, 90, 120, 160)  # px in a 640x480 frame: 2.5 m down to conversation distance
SLOTS = ((0.2, 0.3), (0.7, 0.28), (0.3, 0.72), (0.75, 0.7))  # where the four faces of a frame sit (fractions)
BACKDROPS = ("tissue", "ocean depth", "parcel", "motorcycle (right eye)", "colour wheel")


def held_out_people(frames: int = 16, clips: int = 25) -> Iterator[Scene]:
    """`clips` scenes of four LFW faces each (faces 4k..4k+3 in scene k), of FACE_SIDES px, swaying a little in
    front of a blurred held-out photograph, with sensor noise."""
    faces = _lfw(faces=True)
    rng = np.random.default_rng(11)
    fw, fh = FRAME_SIZE
    for k in range(min(clips, len(faces) // 4)):
        backdrop = cv2.GaussianBlur(_view(HELD_OUT_EMPTY_PHOTOS[BACKDROPS[k % len(BACKDROPS)]](), (0.5, 0.5), 1.0),
                                    (0, 0), 5)
        people = [(_float_grey(cv2.resize(faces[4 * k + i], (side, side), interpolation=cv2.INTER_CUBIC)), side, slot)
                  for i, (side, slot) in enumerate(zip(np.roll(FACE_SIDES, k), SLOTS))]
        scene_frames, boxes = [], []
        for n in range(frames):
            frame, frame_boxes = backdrop.copy(), []
            for i, (patch, side, (sx, sy)) in enumerate(people):
                dx = 6 * math.sin(2 * math.pi * 0.2 * n / 8 + i)
                dy = 3 * math.cos(2 * math.pi * 0.25 * n / 8 + i)
                x, y = round(sx * fw - side / 2 + dx), round(sy * fh - side / 2 + dy)
                x, y = min(max(0, x), fw - side), min(max(0, y), fh - side)
                frame[y:y + side, x:x + side] = patch
                frame_boxes.append((float(x), float(y), float(side), float(side)))
            scene_frames.append(_noisy(frame, rng))
            boxes.append(frame_boxes)
        yield Scene(f"LFW faces {4 * k}-{4 * k + 3}", scene_frames, boxes)


def group_photos_available(folder: Path = FACE_API_DEMO) -> bool:
    return all((folder / name).is_file() for name in GROUP_FACES)


def _mapped(box: tuple[float, ...], matrix: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = box
    scale = matrix[0, 0]
    return x * scale + matrix[0, 2], y * scale + matrix[1, 2], w * scale, h * scale


def group_photos(frames: int = 16, folder: Path = FACE_API_DEMO) -> Iterator[Scene]:
    """Per demo photograph: held still in view (sensor noise), and panned across at 1.8x; per frame the box of every
    person's face, None while its centre is out of view. FileNotFoundError naming the folder when the npm package is not installed."""
    if not group_photos_available(folder):
        raise FileNotFoundError(f"face-api's demo photographs are not in {folder} (`make faceapi-npm` installs npm's "
                                "@vladmandic/face-api 1.7.15 there)")
    rng = np.random.default_rng(13)
    fw, fh = FRAME_SIZE
    for name, faces in GROUP_FACES.items():
        photo = cv2.imread(str(folder / name))
        size = (photo.shape[1], photo.shape[0])
        views = {"whole": [((0.5, 0.5), 1.0)] * frames,
                 "pan": [((0.25 + 0.5 * s, 0.35), 1.8) for s in np.linspace(0, 1, frames)]}
        for kind, steps in views.items():
            scene_frames, boxes = [], []
            for centre, zoom in steps:
                matrix = view_matrix(size, centre, zoom)
                frame = cv2.warpAffine(photo, matrix, FRAME_SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
                mapped = [_mapped(box, matrix) for box in faces]
                # The same people every frame, None while one's face centre is out of view.
                boxes.append([b if 0 <= b[0] + b[2] / 2 < fw and 0 <= b[1] + b[3] / 2 < fh else None for b in mapped])
                scene_frames.append(_noisy(frame, rng))
            yield Scene(f"{name} {kind}", scene_frames, boxes)
