"""The torch Dataset over clip records: 16 sampled frames, augmented (training) or resized (testing), normalised
with CLIP's mean and std, and the label index in the dataset's label order; for scene-aware models (OUS) also the
scene window, the whole frames those 16 face crops were cut from."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from models.data.annotations import AnnotationError, ClipRecord, DatasetError, frame_files
from models.data.layout import DOCS
from models.data.splits import get_layout, read_split
from models.data.sampling import NUM_FRAMES, SAMPLERS
from models.data.transforms import (ClipAugmentation, augmentation_for, eval_transform, scene_transform,
                                    train_transform)

log = logging.getLogger(__name__)


def _clip_normalisation() -> tuple[tuple[float, ...], tuple[float, ...]]:
    from models.backbone import CLIP_MEAN, CLIP_STD  # imports open_clip: only when the default is asked for

    return CLIP_MEAN, CLIP_STD


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path} (missing, empty or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ClipDataset(Dataset):
    """Item i: (faces float [num_frames, 3, image_size, image_size], label int), or with `scene_dirs` (one folder
    per record) (faces, scene, label), scene of the same shape.

    `train`: segment-based random frames and `augmentation`; otherwise each segment's middle frame, resized.
    `sampling="consecutive"`: a random run of consecutive frames in training, the centre run otherwise.
    Randomness comes from torch's generator (one seed drawn per item), so DataLoader workers, which torch seeds
    apart, draw different frames and crops, and torch.manual_seed makes a run repeatable.

    The scene window takes the same frame indices as the faces: scene frame k is the file in the clip's scene
    folder with the stem of face frame k (models.prepare names both alike). It is squashed to the image size
    (transforms.scene_transform) and, in training, flipped exactly when the face clip is flipped."""

    def __init__(self, records: Sequence[ClipRecord], train: bool, num_frames: int = NUM_FRAMES,
                 image_size: int = 224, augmentation: ClipAugmentation | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 scene_dirs: Sequence[Path] | None = None, sampling: str = "segments"):
        if sampling not in SAMPLERS:
            raise ValueError(f"frame sampling must be one of {sorted(SAMPLERS)}, not {sampling!r}")
        self.train_indices, self.eval_indices = SAMPLERS[sampling]
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (CLIP's)")
        if mean is None:
            mean, std = _clip_normalisation()
        self.records = list(records)
        if scene_dirs is not None and len(scene_dirs) != len(self.records):
            raise ValueError(f"{len(scene_dirs)} scene folders for {len(self.records)} clips")
        self.scene_dirs = [Path(d) for d in scene_dirs] if scene_dirs is not None else None
        self.train, self.num_frames, self.image_size = train, num_frames, image_size
        augmentation = augmentation or ClipAugmentation()
        # With a scene the flip is drawn here, once per item, and applied to both windows before their transforms
        # (flipping first is the same distribution: crop boxes and rotation angles are drawn symmetrically).
        self.flip_p = augmentation.flip_p if train and self.scene_dirs is not None else 0.0
        if self.flip_p:
            augmentation = dataclasses.replace(augmentation, flip_p=0.0)
        self.transform = (train_transform(image_size, augmentation, mean, std) if train
                          else eval_transform(image_size, mean, std))
        self.scene_transform = scene_transform(image_size, mean, std) if self.scene_dirs is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, torch.Tensor, int]:
        record = self.records[index]
        frames = frame_files(record.frames_dir)
        if not frames:
            raise DatasetError(f"clip {record.clip_id} ({record.source}): no frame images left in {record.frames_dir}")
        rng = None
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 31 - 1, ()).item()))
            indices = self.train_indices(len(frames), self.num_frames, rng)
        else:
            indices = self.eval_indices(len(frames), self.num_frames)
        faces = self.load_clip(frames, indices)
        if self.scene_dirs is None:
            return self.transform(faces), record.label
        scene = self.load_clip(self.scene_frames(index, frames, indices), range(len(indices)))
        if rng is not None and self.flip_p and rng.random() < self.flip_p:
            faces, scene = faces.flip(-1), scene.flip(-1)
        return self.transform(faces), self.scene_transform(scene), record.label

    def scene_frames(self, index: int, frames: Sequence[Path], indices: Sequence[int]) -> list[Path]:
        """The scene frame beside each chosen face frame (same file stem), in the order of `indices`."""
        record, folder = self.records[index], self.scene_dirs[index]
        by_stem = {p.stem: p for p in frame_files(folder)}
        paths = []
        for i in indices:
            face = frames[int(i)]
            if face.stem not in by_stem:
                what = f"has no frame {face.stem}.*" if by_stem else ("has no frame images" if folder.is_dir()
                                                                      else "is missing")
                raise DatasetError(f"clip {record.clip_id} ({record.source}): scene folder {folder} {what} (the "
                                   f"scene frame of face frame {face}); see {DOCS}")
            paths.append(by_stem[face.stem])
        return paths

    @staticmethod
    def load_clip(frames: Sequence[Path], indices: Sequence[int]) -> torch.Tensor:
        """uint8 [T, 3, H, W] of the chosen frames (each file decoded once; a frame whose size differs from the
        first one's is resized to it, since some datasets' crops vary in size within a clip)."""
        decoded = {int(i): read_rgb(frames[int(i)]) for i in dict.fromkeys(int(i) for i in indices)}
        height, width = decoded[int(indices[0])].shape[:2]
        images = [decoded[int(i)] if decoded[int(i)].shape[:2] == (height, width)
                  else cv2.resize(decoded[int(i)], (width, height), interpolation=cv2.INTER_AREA) for i in indices]
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def build_dataset(dataset: str, root: str | Path, split: str = "train", fold: int | None = None, *,
                  method: str | None = None, image_size: int = 224, num_frames: int = NUM_FRAMES,
                  frames_dir: str | Path | None = None, skip_missing: bool = False,
                  augmentation: ClipAugmentation | None = None, scene: bool = False,
                  scene_dir: str | Path | None = None, sampling: str = "segments",
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ClipDataset:
    """The dataset for one split, augmented as `method`'s paper says when split == "train". `scene`: items are
    (faces, scene, label), the scene frames read from `scene_dir` (absolute, or relative to `root`; default the
    layout's, where models.prepare writes them). A clip without a scene folder is an AnnotationError naming the
    split file's line and the folder, or is left out with `skip_missing`. `mean`/`std`: the model's normalisation
    (its bundle_cfg; default CLIP's)."""
    records = read_split(dataset, root, split, fold, frames_dir=frames_dir, skip_missing=skip_missing)
    train = split == "train"
    augmentation = augmentation or (augmentation_for(method) if train else None)
    scene_dirs = None
    if scene:
        records, scene_dirs = _with_scene(dataset, Path(root), records, scene_dir, skip_missing)
    return ClipDataset(records, train=train, num_frames=num_frames, image_size=image_size, augmentation=augmentation,
                       scene_dirs=scene_dirs, sampling=sampling, mean=mean, std=std)


def _with_scene(dataset: str, root: Path, records: list[ClipRecord], scene_dir: str | Path | None,
                skip_missing: bool) -> tuple[list[ClipRecord], list[Path]]:
    layout = get_layout(dataset)
    scene_root = root / (scene_dir if scene_dir is not None else layout.scene_dir)
    if not scene_root.is_dir():
        raise DatasetError(f"{layout.title} scene folders not found: {scene_root} is not a directory (write them "
                           f"with `python -m models.prepare`, which puts the whole frames beside the face crops; "
                           f"see {DOCS})")
    kept, folders = [], []
    for record in records:
        folder = scene_root / record.clip_id
        if not frame_files(folder):
            if skip_missing:
                continue
            what = "has no frame images" if folder.is_dir() else "is missing"
            path, _, line = record.source.rpartition(":")
            raise AnnotationError(Path(path), int(line), f"clip {record.clip_id}: scene folder {folder} {what}")
        kept.append(record)
        folders.append(folder)
    if len(kept) < len(records):
        log.warning("%s: skipped %d clips without scene frames under %s", layout.title, len(records) - len(kept),
                    scene_root)
    if not kept:
        raise DatasetError(f"none of the {len(records)} clips has scene frames under {scene_root}")
    return kept, folders
