"""What every reader shares: the clip record, the errors, reading an annotation file line by line, and listing a
clip's frame images in temporal order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetError(Exception):
    """A dataset cannot be read as laid out: the message is the whole story (which file, what was expected)."""


class AnnotationError(DatasetError):
    """One line of an annotation file is wrong. The message starts with `file:line:` so editors can jump there."""

    def __init__(self, path: Path, line_number: int, reason: str, line: str | None = None):
        self.path, self.line_number, self.reason = Path(path), line_number, reason
        shown = f" (line: {line.rstrip()!r})" if line is not None else ""
        super().__init__(f"{path}:{line_number}: {reason}{shown}")


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str  # the clip's path under the frames directory, e.g. "00001" or "Action/Happy/0015"
    frames_dir: Path  # the folder of its frame images
    num_frames: int
    label: int  # index into the dataset's labels (models.text.DATASET_LABELS order)
    source: str  # "annotation-file:line", for messages


def annotation_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line; blank lines (a trailing newline, an empty last line)
    are not records. A BOM from spreadsheet exports is dropped."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip("\r\n")


def _frame_order(path: Path) -> tuple:
    # Natural order: DFEW names frames "00001_1.jpg" ... "00001_10.jpg", which plain sorting puts out of order.
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem))


def frame_files(frames_dir: Path) -> list[Path]:
    """The clip's frame images in temporal order (other files, e.g. MAFW's `n_frames`, are ignored)."""
    if not frames_dir.is_dir():
        return []
    images = [p for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(images, key=_frame_order)
