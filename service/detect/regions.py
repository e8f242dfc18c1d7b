"""Where the detector looks. The whole frame is searched on every `every`-th sampled frame while faces are followed
(newcomers are found then) and every `every_empty`-th while none is known (someone stepping into view); on the
frames in between, only a region around each face already known, cropped and scaled so that face is
REGION_FACE_FACTOR x min_face pixels: the embedded BlazeFace then runs on its own 128x128 input (2.3 ms of CPU
against 7.3 ms for a whole 640x480 frame and 22.5 ms for a 1280x720 one). A face the region search loses is found
again by the next whole-frame pass; the tracker keeps its track meanwhile (track_lost_s). A frame between two
passes with no face known costs nothing. docs/DETECTION.md has what this costs and finds (bench regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.detect.base import Detection, FaceDetector, apart, crop_around, from_crop, keep_highest

Box = tuple[float, float, float, float]

# A known face is scaled to this many times min_face in its region: the detector (which keeps faces down to about
# min_face in the crop) then still finds it when it shrank to half, and the crop stays small whatever the face's size
# in the frame (a near face of 300 px costs what a far one of 40 px does).
REGION_FACE_FACTOR = 2.0
# Known boxes overlapping more than this are one region (a track's last box and its detection a frame later).
SAME_REGION_IOU = 0.3


def distinct_regions(boxes: Sequence[Box], iou: float = SAME_REGION_IOU) -> list[Box]:
    """The boxes, in order, without those that overlap an earlier one by more than `iou`."""
    boxes = list(boxes)
    return [boxes[i] for i in apart(boxes, iou)]


def still(now: Sequence[Detection], before: Sequence[Detection], shift: float) -> bool:
    """Whether the same number of faces were found and each is within `shift` of its side (centre and side) of a
    face found before."""
    if not now or len(now) != len(before):
        return False
    for face in now:
        x, y, side = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2, face.box[2]
        if not any(max(abs(x - b.box[0] - b.box[2] / 2), abs(y - b.box[1] - b.box[3] / 2), abs(side - b.box[2]))
                   <= shift * side for b in before):
            return False
    return True


@dataclass
class SearchCounts:
    """Searches by kind: the whole frame, one region around a known face, a still face's frame held (not
    searched). A live source keeps one for all its face workers (/metrics: emotion_detector_searches_total)."""

    whole: int = 0
    region: int = 0
    held: int = 0


class RegionSearch:
    """`detect(image, known)`: faces of one sampled frame: the whole frame on the first call and again once `every`
    calls went by since the last whole-frame search (`every_empty` while nothing is `known`), otherwise only around
    the `known` boxes (faces of the frames before). 1: always the whole frame (the behaviour before; also for
    detectors that do not search crops cheaply, e.g. SCRFD).

    `hold_shift`: when every face of the last two searches stayed within this share of its side (a person sitting
    still), the next frame between whole-frame passes is not searched: the faces of the last search are kept for
    it (never two frames in a row). 0: every frame searched."""

    def __init__(self, detector: FaceDetector, every: int = 1, scale: float = 3.0, min_face: int | None = None,
                 every_empty: int | None = None, hold_shift: float = 0.0, counts: SearchCounts | None = None):
        every_empty = every if every_empty is None else every_empty
        if min(every, every_empty) < 1:
            raise ValueError(f"every and every_empty must be at least 1, got {every} and {every_empty}")
        cheap = detector.searches_crops_cheaply
        self.detector, self.scale = detector, scale
        self.every, self.every_empty = (every, every_empty) if cheap else (1, 1)
        self.hold_shift = hold_shift if cheap else 0.0
        # The known face's side in its region's crop (pixels).
        self.face_side = REGION_FACE_FACTOR * max(min_face if min_face is not None else detector.min_face, 8)
        self.size = max(16, round(scale * self.face_side))
        self.counts = counts if counts is not None else SearchCounts()
        self.calls = 0  # sampled frames seen by this search
        self._since_whole: int | None = None  # calls since the last whole-frame search
        self._last: list[Detection] = []  # the faces of the last search
        self._hold_next = False

    def detect(self, image: np.ndarray, known: Sequence[Box] = ()) -> list[Detection]:
        self.calls += 1
        every = self.every if known else self.every_empty
        if self._since_whole is None or self._since_whole + 1 >= every:
            self._since_whole = 0
            self.counts.whole += 1
            return self._searched(self.detector.detect(image))
        self._since_whole += 1
        if self._hold_next:
            self._hold_next = False
            self.counts.held += 1
            return list(self._last)
        height, width = image.shape[:2]
        found = []
        for box in distinct_regions(known):
            self.counts.region += 1
            crop, zoom, offset = crop_around(image, box, self.scale, self.size)
            found += [from_crop(face, zoom, offset) for face in self.detector.detect(crop)]
        return self._searched(keep_highest([face for face in found if self.detector.keeps(face, height, width)]))

    def _searched(self, found: list[Detection]) -> list[Detection]:
        self._hold_next = self.hold_shift > 0 and still(found, self._last, self.hold_shift)
        self._last = found
        return found
