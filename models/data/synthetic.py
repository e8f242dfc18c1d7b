"""A small synthetic set in a dataset's exact on-disk layout, for tests and demos (the real sets are licensed on
request and cannot be shipped).

    python -m models.data.synthetic DIR --dataset dfew|ferv39k|mafw [--clips-per-label 2] [--size 64] [--videos]

Every label gets `clips-per-label` clips of 8..40 frames (the first clip is always shorter than 16 frames, so the
short-clip path is exercised). A frame is the label's colour with a bright square that moves over the clip, plus
noise: enough for a demo model to learn something. Each frame also gets its scene frame (the whole frame the face
was "cut from": a landscape canvas, 2 x 1.5 the face size, with a label-coloured gradient and the face frame
pasted left of centre) in the layout's scene folder, under the same name, as models.prepare writes them. Folds
(DFEW, MAFW) put clip i in the test set of fold (i mod 5) + 1 and in the training set of the others; FERV39k's test
set takes every fourth clip. `--videos` also writes the raw videos (the scene frames) where the dataset keeps
them (input for `python -m models.prepare`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from models.data.layout import DatasetLayout
from models.data.splits import LAYOUTS, get_layout
from models.data.sampling import NUM_FRAMES

FERV39K_SCENES = ("Action", "Daily")  # two of its scene folders are enough to show the nesting
MIN_FRAMES, MAX_FRAMES = 8, 40
VIDEO_FPS = 8


def _clip_ids(layout: DatasetLayout, clips_per_label: int) -> list[tuple[str, str]]:
    """(clip id, our label) for every synthetic clip, labels interleaved so that every fold sees most of them."""
    pairs = []
    for i in range(clips_per_label * len(layout.labels)):
        label = layout.labels[i % len(layout.labels)]
        if layout.name == "ferv39k":
            scene = FERV39K_SCENES[(i // len(layout.labels)) % len(FERV39K_SCENES)]
            pairs.append((f"{scene}/{layout.code_of(label)}/{i:04d}", label))
        else:
            pairs.append((f"{i + 1:05d}", label))
    return pairs


def _frames(label_index: int, num_labels: int, num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [num_frames, size, size, 3] BGR."""
    hue = int(180 * label_index / num_labels)
    base = cv2.cvtColor(np.full((1, 1, 3), (hue, 160, 170), np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    side = max(2, size // 4)
    for t in range(num_frames):
        image = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        x = int((size - side) * t / max(1, num_frames - 1))
        image[size // 3:size // 3 + side, x:x + side] = 250
        frames[t] = image
    return frames


def _scenes(faces: np.ndarray, label_index: int, num_labels: int) -> np.ndarray:
    """uint8 [T, ~1.5 * size (even), 2 * size, 3] BGR: each face frame pasted into a wider whole frame. Deterministic
    (draws nothing from the generator, so the face frames of a seed stay what they were)."""
    t, size = faces.shape[:2]
    height, width = 2 * ((size + size // 2 + 1) // 2), 2 * size  # even sides, as the yuv420p videos need
    hue = int(180 * ((label_index + num_labels / 2) % num_labels) / num_labels)  # the opposite hue of the face's
    colour = cv2.cvtColor(np.full((1, 1, 3), (hue, 120, 200), np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    ramp = np.linspace(0.4, 1.0, width, dtype=np.float32)[None, :, None]  # darker on the left: not mirror-symmetric
    canvas = np.clip(colour * ramp, 0, 255).astype(np.uint8)
    scenes = np.repeat(np.repeat(canvas, height, axis=0)[None], t, axis=0)
    top, left = size // 4, size // 4
    scenes[:, top:top + size, left:left + size] = faces
    return scenes


def _write_video(path: Path, frames: np.ndarray) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())


def _write_split(path: Path, layout: DatasetLayout, clips: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [(layout.delimiter or " ").join(layout.header)] if layout.header else []
    lines += [layout.row(clip, layout.code_of(label)) for clip, label in clips]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_synthetic(root: str | Path, dataset: str, clips_per_label: int = 2, size: int = 64, seed: int = 0,
                    videos: bool = False) -> Path:
    """Write the synthetic set under `root` (created if needed) and return `root`."""
    layout = get_layout(dataset)
    root = Path(root)
    rng = np.random.default_rng(seed)
    clips = _clip_ids(layout, clips_per_label)
    for i, (clip, label) in enumerate(clips):
        num_frames = MIN_FRAMES if i == 0 else int(rng.integers(NUM_FRAMES, MAX_FRAMES + 1))
        frames = _frames(layout.labels.index(label), len(layout.labels), num_frames, size, rng)
        scenes = _scenes(frames, layout.labels.index(label), len(layout.labels))
        for images, where in ((frames, layout.frames_dir), (scenes, layout.scene_dir)):
            folder = root / where / clip
            folder.mkdir(parents=True, exist_ok=True)
            for n, image in enumerate(images, start=1):
                cv2.imwrite(str(folder / layout.frame_name(clip, n)), image)
        if videos:
            _write_video(root / layout.videos_dir / f"{clip}.mp4", scenes)
    if layout.folds:
        for fold in layout.folds:
            test = [c for i, c in enumerate(clips) if i % len(layout.folds) + 1 == fold]
            train = [c for i, c in enumerate(clips) if i % len(layout.folds) + 1 != fold]
            for split, members in (("train", train), ("test", test)):
                _write_split(root / layout.split_files(split, fold)[0], layout, members)
    else:
        _write_split(root / layout.split_files("train", None)[0], layout, [c for i, c in enumerate(clips) if i % 4])
        _write_split(root / layout.split_files("test", None)[0], layout, [c for i, c in enumerate(clips) if not i % 4])
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.data.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, metavar="DIR", help="where to write the dataset (its root folder)")
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--clips-per-label", type=int, default=2, help="clips of each label (default 2)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", action="store_true", help="also write the raw videos (for models.prepare)")
    args = parser.parse_args(argv)
    if args.clips_per_label < 1 or args.size < 8:
        parser.error("--clips-per-label must be at least 1 and --size at least 8")
    root = write_synthetic(args.root, args.dataset, args.clips_per_label, args.size, args.seed, args.videos)
    layout = get_layout(args.dataset)
    print(f"wrote a synthetic {layout.title} ({args.clips_per_label * len(layout.labels)} clips) to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
