"""MAFW as distributed: videos in data/clips/<5-digit clip>.mp4, frame folders in data/frames/<clip>/, and the
single-expression 5-fold split in "Train & Test Set/single/no_caption/set_<fold>/{train,test}.txt": no header,
`<clip>.mp4 <label name>` separated by whitespace."""

from __future__ import annotations

from models.data.layout import DatasetLayout
from models.text import DATASET_LABELS

# MAFW's single-expression names, in its own numbering 1..11 (which models.text keeps as the index order).
LABEL_CODES = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy", "neutral": "neutral",
               "sadness": "sad", "surprise": "surprise", "contempt": "contempt", "anxiety": "anxiety",
               "helplessness": "helplessness", "disappointment": "disappointment"}

# The folder holding the split has been unpacked under each of these names (MAE-DFER's scripts use the first and
# the last; other code bases rename the ampersand away).
SPLIT_FOLDERS = ("Train & Test Set", "Train_Test_Set", "split")


def clip_id(value: str) -> str:
    stem = value[:-4] if value.lower().endswith(".mp4") else value
    if not stem.isdigit():
        raise ValueError(f"clip must be a video name such as 00025.mp4, got {value!r}")
    return stem.zfill(5)


LAYOUT = DatasetLayout(
    name="mafw",
    title="MAFW",
    labels=DATASET_LABELS["mafw"],
    label_codes=LABEL_CODES,
    folds=(1, 2, 3, 4, 5),
    frames_dir="data/frames",
    videos_dir="data/clips",
    scene_dir="data/scene",  # models.prepare's scene frames (docs/DATASETS.md)
    split_files=lambda split, fold: tuple(f"{folder}/single/no_caption/set_{fold}/{split}.txt"
                                          for folder in SPLIT_FOLDERS),
    clip_id=clip_id,
    row=lambda clip, code: f"{clip}.mp4 {code}",
    frame_name=lambda clip, n: f"{n:05d}.jpg",  # the reader needs only a natural order of the names
)
