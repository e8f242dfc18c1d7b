"""DFEW as distributed (DFEW README, version 1.0): face frames in Clip/clip_224x224/<5-digit clip>/<clip>_<n>.jpg,
raw videos in Clip/original/<clip>.mp4, and the single-label 5-fold split in
EmoLabel_DataSplit/{train,test}(single-labeled)/set_<fold>.csv with the header `video_name,label` and labels 1..7."""

from __future__ import annotations

from models.data.layout import DatasetLayout
from models.text import DATASET_LABELS

# EmoLabel_DataSplit's label column: "1: Happy 2: Sad 3: Neutral 4: Angry 5: Surprise 6: Disgust 7: Fear".
LABEL_CODES = {"1": "happy", "2": "sad", "3": "neutral", "4": "angry", "5": "surprise", "6": "disgust", "7": "fear"}


def split_files(split: str, fold: int | None) -> tuple[str, ...]:
    # The README names the archives "train(single_labeled).zip"; the unpacked folders (and MAE-DFER, DFER-CLIP)
    # say "train(single-labeled)". Either is accepted.
    return tuple(f"EmoLabel_DataSplit/{split}({kind})/set_{fold}.csv" for kind in ("single-labeled", "single_labeled"))


def clip_id(value: str) -> str:
    # video_name is the clip number; spreadsheets drop its leading zeros, the folders keep five digits.
    if not value.isdigit():
        raise ValueError(f"video_name must be a clip number such as 00001, got {value!r}")
    return value.zfill(5)


LAYOUT = DatasetLayout(
    name="dfew",
    title="DFEW",
    labels=DATASET_LABELS["dfew"],
    label_codes=LABEL_CODES,
    folds=(1, 2, 3, 4, 5),
    frames_dir="Clip/clip_224x224",
    videos_dir="Clip/original",
    scene_dir="Clip/scene",  # models.prepare's scene frames (docs/DATASETS.md)
    split_files=split_files,
    clip_id=clip_id,
    row=lambda clip, code: f"{int(clip)},{code}",
    frame_name=lambda clip, n: f"{clip}_{n}.jpg",  # README: "The y th frame of clip x.mp4 is named x_y.jpg"
    delimiter=",",
    header=("video_name", "label"),
)
