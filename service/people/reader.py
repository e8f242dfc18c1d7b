"""FaceReader: per source, who each confirmed track's face is and how well it can be read, at as little cost as
that needs. The face worker calls `read()` for every tracked face of a sampled frame (the FacePipeline only hands
it confirmed tracks) and `end()` when a track ends.

- Landmarks (68 points) run on a track's first frame and then every `face_landmarks_every` sampled frames (4: twice
  a second at 8 fps); between them the pose and sharpness of the last run stand, the size is the current box's.
  A face under quality_min_face_px is not read at all (too small to trust either).
- Descriptors (128-d) run when a track is confirmed, to find who it is, and then at most
  `person_descriptor_refreshes` times, `person_descriptor_every_s` apart, each time only on a frame whose face can be
  read (no uncertain reason) and is turned and tilted by at most `person_describe_max_angle`, so the registry
  holds good views of the person (a face seen first at a bad angle is a new person: a miss, not a false match).
  With person_recognition off none run and person_id is the track id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.errors import ServiceError
from service.events import Box, FaceReading, HeadPose
from service.people.pose import face_frame_quaternion, head_pose, looking
from service.people.quality import QualityLimits, face_px, face_quality, outside_share, sharpness, uncertain_reason
from service.people.registry import PersonRegistry


class LandmarkReader(Protocol):
    def landmarks(self, frame_bgr: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 frame pixels."""


class Describer(Protocol):
    def describe(self, frame_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(128,) float32."""


@dataclass(frozen=True)
class ReaderSettings:
    landmarks_every: int
    descriptor_refreshes: int
    descriptor_every_s: float
    looking_max_yaw: float
    looking_max_pitch: float
    describe_max_angle: float
    limits: QualityLimits
    focal_px: float | None = None


@dataclass
class _Track:
    person_id: int | None = None
    seen_before: bool = False
    absent_s: float | None = None
    frames: int = 0
    pose: HeadPose | None = None
    position_m: tuple[float, float, float] | None = None
    orientation_xyzw: tuple[float, float, float, float] | None = None
    pose_read: bool = False
    sharpness: float | None = None
    refreshes: int = 0
    next_refresh_t: float = 0.0


class FaceReader:
    def __init__(self, settings: ReaderSettings, landmark_net: LandmarkReader, describer: Describer | None,
                 registry: PersonRegistry | None, now: float = 0.0):
        """`registry` None: recognition off (person_id = track id; `describer` unused)."""
        self.settings, self.landmark_net, self.describer, self.registry = settings, landmark_net, describer, registry
        self._tracks: dict[int, _Track] = {}
        self.landmark_runs = self.descriptor_runs = 0
        if registry is not None:
            registry.none_in_view(now)  # the tracks of a face worker before this one are over

    def read(self, image: np.ndarray, track_id: int, box: Box, t: float) -> FaceReading:
        state = self._tracks.get(track_id)
        first = state is None
        if first:
            state = self._tracks[track_id] = _Track()
        height, width = image.shape[:2]
        landmarks = None
        big_enough = face_px(box) >= self.settings.limits.min_face_px
        if big_enough and (first or state.frames % self.settings.landmarks_every == 0):
            landmarks = self.landmark_net.landmarks(image, box)
            self.landmark_runs += 1
            pose = head_pose(landmarks, width, height, self.settings.focal_px)
            state.pose = HeadPose(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll) if pose else None
            state.position_m = tuple(round(float(v), 3) for v in pose.translation) if pose else None
            state.orientation_xyzw = face_frame_quaternion(pose.rotation) if pose else None
            state.pose_read = True
            state.sharpness = sharpness(image, box)
        state.frames += 1
        quality = face_quality(box, state.sharpness, state.pose)
        reason = uncertain_reason(quality, outside_share(box, width, height), state.pose_read, self.settings.limits)
        describable = (landmarks is not None and reason is None and self.describer is not None
                       and state.pose is not None and max(abs(state.pose.yaw), abs(state.pose.pitch),
                                                          abs(state.pose.roll)) <= self.settings.describe_max_angle)
        if state.person_id is None:
            self._identify(state, track_id, image, landmarks if describable else None, t)
        elif describable and self.registry is not None and state.refreshes < self.settings.descriptor_refreshes \
                and t >= state.next_refresh_t:
            descriptor = self._describe(image, landmarks)
            if descriptor is not None:
                self.registry.add_descriptor(state.person_id, descriptor)
            state.refreshes += 1
            state.next_refresh_t = t + self.settings.descriptor_every_s
        return FaceReading(person_id=state.person_id, seen_before=state.seen_before, absent_s=state.absent_s,
                           quality=quality, head_pose=state.pose,
                           looking=looking(state.pose, self.settings.looking_max_yaw, self.settings.looking_max_pitch),
                           uncertain_reason=reason, position_m=state.position_m,
                           orientation_xyzw=state.orientation_xyzw)

    def _identify(self, state: _Track, track_id: int, image: np.ndarray, landmarks: np.ndarray | None,
                  t: float) -> None:
        if self.registry is None:
            state.person_id = track_id
            return
        descriptor = self._describe(image, landmarks) if landmarks is not None else None
        identity = self.registry.identify(descriptor, t)
        state.person_id, state.seen_before, state.absent_s = identity.person_id, identity.seen_before, identity.absent_s
        state.next_refresh_t = t + self.settings.descriptor_every_s

    def _describe(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        """The face's descriptor; None where its landmarks give nothing to align (the nets' clear error)."""
        self.descriptor_runs += 1
        try:
            return self.describer.describe(image, landmarks)
        except ServiceError:
            return None

    def end(self, track_id: int, t: float) -> None:
        state = self._tracks.pop(track_id, None)
        if state is not None and self.registry is not None and state.person_id is not None:
            self.registry.left(state.person_id, t)

    def person_id(self, track_id: int) -> int | None:
        state = self._tracks.get(track_id)
        return state.person_id if state else None
