"""The datasets we read, by name, and the front door `read_split`."""

from __future__ import annotations

from pathlib import Path

from models.data import dfew, ferv39k, mafw
from models.data.annotations import ClipRecord, DatasetError
from models.data.layout import DatasetLayout

LAYOUTS: dict[str, DatasetLayout] = {layout.name: layout for layout in (dfew.LAYOUT, ferv39k.LAYOUT, mafw.LAYOUT)}


def get_layout(dataset: str) -> DatasetLayout:
    key = dataset.lower()
    if key not in LAYOUTS:
        raise DatasetError(f"unknown dataset {dataset!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[key]


def read_split(dataset: str, root: str | Path, split: str = "train", fold: int | None = None,
               frames_dir: str | Path | None = None, skip_missing: bool = False) -> list[ClipRecord]:
    """The clips of `split` ("train" or "test") of `dataset` under `root`; `fold` 1..5 for DFEW and MAFW, None
    for FERV39k. Labels are indices into models.text.DATASET_LABELS[dataset]."""
    return get_layout(dataset).read_split(root, split, fold, frames_dir=frames_dir, skip_missing=skip_missing)
