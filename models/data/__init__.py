"""DFER datasets: DFEW, FERV39k and MAFW read in the layouts they are distributed in (docs/DATASETS.md).

    records = read_split("dfew", "/data/DFEW", "train", fold=1)       # ClipRecords; labels in models.text order
    train = build_dataset("dfew", "/data/DFEW", "train", fold=1, method="pe_clip")   # faces [16, 3, 224, 224], label
    faces, targets, kind = mix_batch(faces, labels, 7, mixing_for("pe_clip"))        # mixup / FMix per batch

The layouts and readers import no torch; `ClipDataset`, `build_dataset`, the transforms and the mixing load it on
first use.
"""

from __future__ import annotations

from models.data.annotations import AnnotationError, ClipRecord, DatasetError, frame_files
from models.data.layout import DatasetLayout
from models.data.splits import LAYOUTS, get_layout, read_split
from models.data.sampling import NUM_FRAMES, eval_indices, train_indices

_LAZY = {
    "ClipDataset": "models.data.dataset", "build_dataset": "models.data.dataset",
    "ClipAugmentation": "models.data.transforms", "augmentation_for": "models.data.transforms",
    "train_transform": "models.data.transforms", "eval_transform": "models.data.transforms",
    "BatchMixing": "models.data.mixing", "mixing_for": "models.data.mixing",
    "mix_batch": "models.data.mixing", "mixup": "models.data.mixing", "fmix": "models.data.mixing",
    "soft_cross_entropy": "models.data.mixing",
}

__all__ = ["AnnotationError", "ClipRecord", "DatasetError", "DatasetLayout", "LAYOUTS", "NUM_FRAMES",
           "frame_files", "get_layout", "read_split", "eval_indices", "train_indices", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models.data' has no attribute {name!r}")
