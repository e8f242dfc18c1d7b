"""A dataset's on-disk layout as data (where frames, videos and split files live, how an annotation line reads,
how its labels are coded), and the one reader that turns a split file into clip records."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.data.annotations import AnnotationError, ClipRecord, DatasetError, annotation_lines, frame_files

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
DOCS = "docs/DATASETS.md"


@dataclass(frozen=True)
class DatasetLayout:
    name: str  # "dfew", "ferv39k", "mafw": the key of models.text.DATASET_LABELS
    title: str  # as the dataset's authors write it
    labels: tuple[str, ...]  # our label ids in output order (models.text.DATASET_LABELS[name])
    label_codes: dict[str, str]  # the dataset's own label encoding, as it writes it -> our label id
    folds: tuple[int, ...]  # cross-validation folds; () for one fixed train/test split
    frames_dir: str  # default root of the per-clip frame folders, relative to the dataset root
    videos_dir: str  # the raw videos as distributed, relative to the dataset root (input of models.prepare)
    scene_dir: str  # default root of the per-clip scene (whole-frame) folders, relative to the dataset root: ours,
                    # written by models.prepare beside the face crops (the datasets ship no scene frames)
    split_files: Callable[[str, int | None], tuple[str, ...]]  # candidates for (split, fold); first existing wins
    clip_id: Callable[[str], str]  # first column -> the clip's path under frames_dir; ValueError(reason) if bad
    row: Callable[[str, str], str]  # (clip id, dataset label code) -> an annotation line, for the synthetic sets
    frame_name: Callable[[str, int], str]  # (clip id, 1-based frame number) -> image file name
    delimiter: str | None = None  # None: any run of whitespace
    header: tuple[str, ...] | None = None  # the header row the split files start with, if any
    columns: int = 2  # clip, label

    def code_of(self, label: str) -> str:
        """The dataset's own code for one of our labels (the first listed, as the dataset writes it)."""
        return next(code for code, ours in self.label_codes.items() if ours == label)

    def check_fold(self, fold: int | None) -> None:
        if self.folds and fold not in self.folds:
            raise DatasetError(f"{self.title} has {len(self.folds)} folds: pass fold={self.folds[0]}..{self.folds[-1]} "
                               f"(got {fold!r})")
        if not self.folds and fold is not None:
            raise DatasetError(f"{self.title} has one fixed train/test split and no folds (got fold={fold!r})")

    def split_file(self, root: Path, split: str, fold: int | None) -> Path:
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
        self.check_fold(fold)
        candidates = [root / rel for rel in self.split_files(split, fold)]
        for path in candidates:
            if path.is_file():
                return path
        tried = ", ".join(str(p) for p in candidates)
        raise DatasetError(f"no {self.title} {split} split file for fold {fold} under {root} (looked for {tried}); "
                           f"see {DOCS} for the expected layout")

    def read_split(self, root: str | Path, split: str = "train", fold: int | None = None,
                   frames_dir: str | Path | None = None, skip_missing: bool = False) -> list[ClipRecord]:
        """The clips of one split, in file order. `frames_dir` (absolute, or relative to `root`) overrides where the
        frame folders are (e.g. the output of models.prepare). A clip whose folder is missing or holds no image is
        an AnnotationError naming the file and line, unless `skip_missing` (then it is counted and logged)."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{self.title} root {root} is not a directory; see {DOCS}")
        path = self.split_file(root, split, fold)
        frames_root = root / (frames_dir if frames_dir is not None else self.frames_dir)
        if not frames_root.is_dir():
            raise DatasetError(f"{self.title} frame folders not found: {frames_root} is not a directory "
                               f"(prepare them with `python -m models.prepare`; see {DOCS})")
        records: list[ClipRecord] = []
        seen: dict[str, int] = {}
        missing = 0
        codes = {code.lower(): label for code, label in self.label_codes.items()}  # "happy" == "Happy"
        lines = annotation_lines(path)
        if self.header is not None:
            first = next(lines, None)
            if first is None or [f.strip().lower() for f in self._fields(first[1])] != list(self.header):
                number, line = first if first is not None else (1, None)
                raise AnnotationError(path, number, f"expected the header row {self._join(self.header)!r}", line)
        for number, line in lines:
            fields = [f.strip() for f in self._fields(line)]
            if len(fields) != self.columns:
                raise AnnotationError(path, number, f"expected {self.columns} columns (clip, label) separated by "
                                      f"{self._separator_name()}, found {len(fields)}", line)
            try:
                clip_id = self.clip_id(fields[0])
            except ValueError as exc:
                raise AnnotationError(path, number, str(exc), line) from None
            label = codes.get(fields[1].lower())
            if label is None:
                raise AnnotationError(path, number, f"unknown label {fields[1]!r}; {self.title} labels are "
                                      f"{self._codes_text()}", line)
            if clip_id in seen:
                raise AnnotationError(path, number, f"clip {clip_id} is already listed on line {seen[clip_id]}", line)
            seen[clip_id] = number
            clip_dir = frames_root / clip_id
            frames = frame_files(clip_dir)
            if not frames:
                if skip_missing:
                    missing += 1
                    continue
                what = "has no frame images" if clip_dir.is_dir() else "is missing"
                raise AnnotationError(path, number, f"clip {clip_id}: frame folder {clip_dir} {what}", line)
            records.append(ClipRecord(clip_id=clip_id, frames_dir=clip_dir, num_frames=len(frames),
                                      label=self.labels.index(label), source=f"{path}:{number}"))
        if missing:
            log.warning("%s %s (fold %s): skipped %d listed clips without frames under %s", self.title, split, fold,
                        missing, frames_root)
        if not records:
            raise DatasetError(f"{path} lists no clips" + (f" with frames under {frames_root}" if missing else ""))
        return records

    def _fields(self, line: str) -> list[str]:
        return line.split(self.delimiter) if self.delimiter is not None else line.split()

    def _join(self, fields) -> str:
        return (self.delimiter or " ").join(fields)

    def _separator_name(self) -> str:
        return {None: "whitespace", ",": "a comma"}.get(self.delimiter, repr(self.delimiter))

    def _codes_text(self) -> str:
        return ", ".join(f"{code} ({ours})" if code != ours else code for code, ours in self.label_codes.items())


def relative_clip_path(value: str) -> str:
    """A clip path given relative to the frames folder: no absolute paths, no '..', forward slashes."""
    parts = value.replace("\\", "/").strip("/").split("/")
    if value.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"clip path {value!r} must be relative to the frames folder, without '..'")
    return "/".join(parts)
