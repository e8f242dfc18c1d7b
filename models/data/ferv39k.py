"""FERV39k as distributed: face crops in 2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/*.jpg, raw videos in
0_7_LabelClips/<Scene>/<Emotion>/<clip>.mp4, and the official train/test split in 4_setups/All_scenes/
{train,test}_All.csv: no header, one clip a line, `<Scene>/<Emotion>/<clip> <Emotion>` separated by a space."""

from __future__ import annotations

from models.data.layout import DatasetLayout, relative_clip_path
from models.text import DATASET_LABELS

# The split files carry class names; models.text fixes the index order (DFEW's, as MAE-DFER and DFER-CLIP use).
LABEL_CODES = {"Happy": "happy", "Sad": "sad", "Neutral": "neutral", "Angry": "angry", "Surprise": "surprise",
               "Disgust": "disgust", "Fear": "fear"}

LAYOUT = DatasetLayout(
    name="ferv39k",
    title="FERV39k",
    labels=DATASET_LABELS["ferv39k"],
    label_codes=LABEL_CODES,
    folds=(),
    frames_dir="2_ClipsforFaceCrop",
    videos_dir="0_7_LabelClips",
    scene_dir="scene",  # models.prepare's scene frames (docs/DATASETS.md)
    split_files=lambda split, fold: (f"4_setups/All_scenes/{split}_All.csv",),
    clip_id=relative_clip_path,
    row=lambda clip, code: f"{clip} {code}",
    frame_name=lambda clip, n: f"{n:04d}.jpg",  # the reader needs only a natural order of the names
)
