"""The torch Dataset over clip records: 16 sampled frames, augmented (training) or resized (testing), normalised
with CLIP's mean and std, and the label index in the dataset's label order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from models.data.annotations import ClipRecord, DatasetError, frame_files
from models.data.registry import read_split
from models.data.sampling import NUM_FRAMES, eval_indices, train_indices
from models.data.transforms import ClipAugmentation, augmentation_for, eval_transform, train_transform


def _clip_normalisation() -> tuple[tuple[float, ...], tuple[float, ...]]:
    from models.backbone import CLIP_MEAN, CLIP_STD  # imports open_clip: only when the default is asked for

    return CLIP_MEAN, CLIP_STD


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path} (missing, empty or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ClipDataset(Dataset):
    """Item i: (faces float [num_frames, 3, image_size, image_size], label int).

    `train`: segment-based random frames and `augmentation`; otherwise each segment's middle frame, resized.
    Randomness comes from torch's generator (one seed drawn per item), so DataLoader workers, which torch seeds
    apart, draw different frames and crops, and torch.manual_seed makes a run repeatable."""

    def __init__(self, records: Sequence[ClipRecord], train: bool, num_frames: int = NUM_FRAMES,
                 image_size: int = 224, augmentation: ClipAugmentation | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (CLIP's)")
        if mean is None:
            mean, std = _clip_normalisation()
        self.records = list(records)
        self.train, self.num_frames, self.image_size = train, num_frames, image_size
        self.transform = (train_transform(image_size, augmentation or ClipAugmentation(), mean, std) if train
                          else eval_transform(image_size, mean, std))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        frames = frame_files(record.frames_dir)
        if not frames:
            raise DatasetError(f"clip {record.clip_id} ({record.source}): no frame images left in {record.frames_dir}")
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 31 - 1, ()).item()))
            indices = train_indices(len(frames), self.num_frames, rng)
        else:
            indices = eval_indices(len(frames), self.num_frames)
        return self.transform(self.load_clip(frames, indices)), record.label

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
                  augmentation: ClipAugmentation | None = None) -> ClipDataset:
    """The dataset for one split, augmented as `method`'s paper says when split == "train"."""
    records = read_split(dataset, root, split, fold, frames_dir=frames_dir, skip_missing=skip_missing)
    train = split == "train"
    augmentation = augmentation or (augmentation_for(method) if train else None)
    return ClipDataset(records, train=train, num_frames=num_frames, image_size=image_size, augmentation=augmentation)
