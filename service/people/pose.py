"""Head pose from 68 face landmarks (the iBUG 300-W / dlib order face-api.js's landmark net gives): cv2.solvePnP of
14 of them against a generic 3D face.

The 3D face is the 14-point subset of a mean face model that the widely used head-pose examples for dlib's 68
landmarks share (brow ends, eye corners, nose wings, mouth corners, lower lip, chin), turned into the camera's axes
(x to the image's right, y down, z away from the camera) and scaled to metres (outer eye corners 9 cm apart, an
adult's). The camera is assumed pinhole with a focal length of `focal_px` (default: the frame's width, about a 53°
horizontal field of view, a webcam's), centred, without distortion: angles hardly depend on it, distances do.

Angles are of the head against the line from the camera to the face, so (0, 0, 0) means looking straight into the
camera wherever in the image the face is. Conventions (service/events.py HeadPose): yaw positive = turned to the
person's left, pitch positive = looking up, roll positive = tilted to the person's left shoulder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# 68-point indices of the model points, in the same order.
LANDMARK_INDICES = (17, 21, 22, 26, 36, 39, 42, 45, 31, 35, 48, 54, 57, 8)
_MODEL = np.array([
    [6.825897, 6.760612, 4.402142], [1.330353, 7.122144, 6.903745], [-1.330353, 7.122144, 6.903745],
    [-6.825897, 6.760612, 4.402142], [5.311432, 5.485328, 3.987654], [1.789930, 5.393625, 4.413414],
    [-1.789930, 5.393625, 4.413414], [-5.311432, 5.485328, 3.987654], [2.005628, 1.409845, 6.165652],
    [-2.005628, 1.409845, 6.165652], [2.774015, -2.080775, 5.048531], [-2.774015, -2.080775, 5.048531],
    [0.000000, -3.116408, 6.097667], [0.000000, -7.415691, 4.070434]], np.float64)
# The model's own tilt: faces looking into the camera (the astronaut, Grace Hopper and the 22 people of face-api's
# demo photographs, at 50, 80 and 160 px) came out at a median pitch of -10.3 degrees on the model as published
# (run 2026-12-07 on the 2-core dev machine), so it is turned by that much: a face looking into the camera is at 0.
MODEL_PITCH_DEG = -10.3
# A pose whose model points land further than this from the landmarks, on average, in face widths (outer eye corner
# to outer eye corner), is not a head's: landmarks of something that is not a face, or of a face cut off.
MAX_REPROJECTION = 0.12


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray  # 3x3, model -> camera axes
    translation: np.ndarray  # (3,) metres, the point between the eyes in camera axes
    reprojection: float  # mean landmark error, in face widths


def _model_points() -> np.ndarray:
    """Camera axes (x right, y down, z away), centred between the eyes, outer eye corners 0.09 m apart, and turned by
    MODEL_PITCH_DEG."""
    points = (-_MODEL + _MODEL[4:8].mean(0)) * (0.09 / (2 * 5.311432))
    return points @ rotation_from_angles(0.0, MODEL_PITCH_DEG, 0.0).T


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head rotation (model -> camera axes, for a face on the optical axis) of yaw, pitch, roll in degrees, by
    this module's conventions: R = Ry(-yaw) Rx(-pitch) Rz(roll)."""
    a, b, c = math.radians(-yaw), math.radians(-pitch), math.radians(roll)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """The inverse of rotation_from_angles: (yaw, pitch, roll) in degrees."""
    pitch = -math.degrees(math.asin(max(-1.0, min(1.0, -rotation[1, 2]))))
    yaw = -math.degrees(math.atan2(rotation[0, 2], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[1, 1]))
    return yaw, pitch, roll


def _ray_rotation(direction: np.ndarray) -> np.ndarray:
    """The rotation taking the optical axis (0, 0, 1) to `direction` by the shortest turn: a face there that looks
    back along the ray has this rotation."""
    z = np.array([0.0, 0.0, 1.0])
    d = direction / np.linalg.norm(direction)
    axis = np.cross(z, d)
    s, c = np.linalg.norm(axis), float(z @ d)
    if s < 1e-9:
        return np.eye(3)
    k = axis / s
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * skew + (1 - c) * skew @ skew


FACE_MODEL_M = _model_points()


def camera_matrix(width: int, height: int, focal_px: float | None = None) -> np.ndarray:
    f = float(focal_px or width)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def head_pose(landmarks: np.ndarray, width: int, height: int, focal_px: float | None = None) -> Pose | None:
    """The head's pose from (68, 2) landmarks in frame pixels; None when no head pose explains them (solvePnP
    fails, the face would be behind the camera, or the fit is off by more than MAX_REPROJECTION face widths)."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (68, 2):
        return None
    image_points = points[list(LANDMARK_INDICES)]
    if not np.isfinite(image_points).all():
        return None
    camera = camera_matrix(width, height, focal_px)
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL_M, image_points, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        return None
    projected, _ = cv2.projectPoints(FACE_MODEL_M, rvec, tvec, camera, None)
    face_width = float(np.linalg.norm(points[45] - points[36])) or 1.0
    reprojection = float(np.linalg.norm(projected.reshape(-1, 2) - image_points, axis=1).mean()) / face_width
    if reprojection > MAX_REPROJECTION:
        return None
    rotation = cv2.Rodrigues(rvec)[0]
    translation = tvec.reshape(3)
    yaw, pitch, roll = angles_from_rotation(_ray_rotation(translation).T @ rotation)
    return Pose(round(yaw, 1), round(pitch, 1), round(roll, 1), rotation, translation, round(reprojection, 4))


def project(rotation: np.ndarray, translation: np.ndarray, width: int, height: int,
            focal_px: float | None = None) -> np.ndarray:
    """The model's 14 points seen by the camera (pixels), at the LANDMARK_INDICES of a (68, 2) array whose other
    points are NaN: what head_pose reads, for checks of it."""
    points, _ = cv2.projectPoints(FACE_MODEL_M, cv2.Rodrigues(rotation)[0], translation.astype(np.float64),
                                  camera_matrix(width, height, focal_px), None)
    landmarks = np.full((68, 2), np.nan)
    landmarks[list(LANDMARK_INDICES)] = points.reshape(-1, 2)
    return landmarks


# The face frame of ROS4HRI (REP-155 `face_<id>`: x out of the face, y to the person's left, z up) in model axes.
_FACE_FRAME_AXES = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])


def face_frame_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """The face frame's orientation in the camera's optical frame (x right, y down, z forward) as a unit quaternion
    (x, y, z, w), from a head rotation (model -> camera axes)."""
    m = rotation @ _FACE_FRAME_AXES
    w = math.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    return x / norm, y / norm, z / norm, w / norm


def looking(pose: Pose | None, max_yaw: float, max_pitch: float) -> bool | None:
    """The head is turned to the camera within the limits (None: no pose)."""
    if pose is None:
        return None
    return abs(pose.yaw) <= max_yaw and abs(pose.pitch) <= max_pitch
