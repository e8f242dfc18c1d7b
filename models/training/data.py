"""The loaders of one run: the training fold (augmented as the recipe says), the validation split held out of it
where the recipe schedules or selects on one, and the test fold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from models.recipes import Recipe, Validation
from models.training.distributed import Dist


def stratified_split(labels: list[int], validation: Validation) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): `fraction` of each class (at least one clip of every class with two
    or more), drawn with `seed`, so the same fold always gives the same split."""
    rng = np.random.default_rng(validation.seed)
    labels_array = np.asarray(labels)
    held: list[int] = []
    for label in np.unique(labels_array):
        members = rng.permutation(np.flatnonzero(labels_array == label))
        count = int(round(validation.fraction * len(members)))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        held.extend(members[:count].tolist())
    held_set = set(held)
    train = np.array([i for i in range(len(labels)) if i not in held_set], dtype=int)
    return train, np.array(sorted(held), dtype=int)


class GreyClips(Dataset):
    """Adapts CLIP-normalised RGB clips to a grey model's own normalisation (the baseline's 64x64 grey input)."""

    def __init__(self, clips, cfg: dict[str, Any]):
        from models.backbone import CLIP_MEAN, CLIP_STD

        self.clips, self.cfg = clips, cfg
        self.rgb_mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self.rgb_std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index):
        faces, label = self.clips[index]
        rgb = faces * self.rgb_std + self.rgb_mean  # back to [0, 1]
        grey = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
        return (grey - self.cfg["mean"][0]) / self.cfg["std"][0], label


def unpack(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(faces, labels, scene): a scene-aware model's batches are (faces, scene, labels), the others' (faces, labels)."""
    if len(batch) == 3:
        faces, scene, labels = batch
        return faces, labels, scene
    faces, labels = batch
    return faces, labels, None


@dataclass
class Loaders:
    train: DataLoader
    test: DataLoader
    validation: DataLoader | None
    train_sampler: DistributedSampler | None
    sizes: dict[str, int]
    crop: dict[str, Any] | None = None  # how the face crops were made (models.prepare's crop.json), for the bundle


def prepared_crop(dataset: str, root, frames_dir=None) -> dict[str, Any] | None:
    """The crop policy models.prepare recorded beside the face folders (OUT_DIR/crop.json: margin, align), so
    that export can declare it in bundle.json and the service crops as the model was trained; None for crops made
    elsewhere (e.g. the datasets' own face crops), whose policy is unknown."""
    from models.data.splits import get_layout

    path = Path(root) / (frames_dir if frames_dir is not None else get_layout(dataset).frames_dir) / "crop.json"
    if not path.is_file():
        return None
    declared = json.loads(path.read_text())
    return {"margin": float(declared["margin"]), "align": declared.get("align", "none")}


def build_loaders(args, recipe: Recipe, model_cfg: dict[str, Any], ddp: Dist) -> Loaders:
    from models.data import build_dataset
    from models.data.dataset import ClipDataset
    from models.data.transforms import augmentation_from_recipe

    common = {"image_size": model_cfg["image_size"], "num_frames": recipe.num_frames, "frames_dir": args.frames_dir,
              "scene": bool(model_cfg.get("needs_scene")), "scene_dir": args.scene_dir,
              "sampling": recipe.frame_sampling}
    if model_cfg["channels"] == 3:  # the model's own normalisation (DFER-CLIP's is none: pixels in [0, 1])
        common |= {"mean": model_cfg["mean"], "std": model_cfg["std"]}
    train = build_dataset(args.dataset, args.data, "train", args.fold,
                          augmentation=augmentation_from_recipe(recipe.augment), **common)
    test = build_dataset(args.dataset, args.data, "test", args.fold, **common)
    validation = None
    if recipe.validation is not None:
        # the same clips without augmentation, then the two disjoint index sets of the split
        plain = ClipDataset(train.records, train=False, num_frames=recipe.num_frames,
                            image_size=model_cfg["image_size"], scene_dirs=train.scene_dirs,
                            sampling=recipe.frame_sampling, mean=common.get("mean"), std=common.get("std"))
        keep, held = stratified_split([r.label for r in train.records], recipe.validation)
        if len(held) == 0:
            raise ValueError(f"the validation split ({recipe.validation.fraction:.0%} of {len(train.records)} "
                             "training clips) is empty")
        train, validation = Subset(train, keep.tolist()), Subset(plain, held.tolist())
    if model_cfg["channels"] == 1:  # the baseline reads grey 64x64
        train, test = GreyClips(train, model_cfg), GreyClips(test, model_cfg)
        validation = GreyClips(validation, model_cfg) if validation is not None else None
    sharded = ddp.world > 1
    train_sampler = DistributedSampler(train, ddp.world, ddp.rank, shuffle=True, seed=args.seed) if sharded else None
    per_device = max(1, recipe.batch_size // ddp.world)
    if len(train) < per_device * (ddp.world if sharded else 1):
        # the training loader drops the last incomplete batch: fewer clips than one batch would train nothing
        raise ValueError(f"the training split has {len(train)} clips, fewer than one batch of {recipe.batch_size}: "
                         "lower --batch-size")
    options = dict(num_workers=args.workers, pin_memory=args.device.startswith("cuda"),
                   persistent_workers=args.workers > 0)

    def evaluation_loader(dataset):
        sampler = DistributedSampler(dataset, ddp.world, ddp.rank, shuffle=False) if sharded else None
        return DataLoader(dataset, per_device, shuffle=False, sampler=sampler, **options)

    return Loaders(
        train=DataLoader(train, per_device, shuffle=train_sampler is None, sampler=train_sampler, drop_last=True,
                         **options),
        test=evaluation_loader(test),
        validation=evaluation_loader(validation) if validation is not None else None,
        train_sampler=train_sampler,
        sizes={"train": len(train), "validation": len(validation) if validation is not None else 0,
               "test": len(test)},
        crop=prepared_crop(args.dataset, args.data, args.frames_dir))
