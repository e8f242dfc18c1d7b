"""Head pose from 68 landmarks (solvePnP on the generic face) and the quality of a face: synthetic landmarks of
known rotations, and real photographs."""

import cv2
import numpy as np
import pytest

from service.people.pose import (_ray_rotation, angles_from_rotation, face_frame_quaternion, head_pose, looking,
                                 project, rotation_from_angles)
from service.people.quality import QualityLimits, face_quality, outside_share, sharpness, uncertain_reason
from tests.people.conftest import scaled

LIMITS = QualityLimits(min_face_px=48, min_sharpness=60, max_yaw=45, max_pitch=30, max_outside=0.15)


@pytest.mark.parametrize("yaw, pitch, roll", [(0, 0, 0), (30, 0, 0), (0, -20, 0), (0, 0, 15), (-40, 15, -10),
                                              (55, -25, 20)])
@pytest.mark.parametrize("position", [(0.0, 0.0, 0.8), (0.35, -0.15, 1.4)])
def test_solvepnp_recovers_the_rotation_a_generic_face_was_projected_with(yaw, pitch, roll, position):
    translation = np.array(position)
    # Against the line to the camera: a face off the optical axis looking back along it is at (0, 0, 0).
    rotation = _ray_rotation(translation) @ rotation_from_angles(yaw, pitch, roll)
    pose = head_pose(project(rotation, translation, 640, 480), 640, 480)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=0.2)
    assert pose.translation == pytest.approx(translation, abs=1e-3)
    assert angles_from_rotation(rotation_from_angles(yaw, pitch, roll)) == pytest.approx((yaw, pitch, roll))


def test_the_signs_are_the_documented_ones():
    centre = np.array([0.0, 0.0, 0.8])
    front = project(rotation_from_angles(0, 0, 0), centre, 640, 480)
    left = project(rotation_from_angles(30, 0, 0), centre, 640, 480)  # turned to the person's left
    up = project(rotation_from_angles(0, 20, 0), centre, 640, 480)
    nose_x = lambda lm: (lm[31, 0] + lm[35, 0]) / 2 - (lm[36, 0] + lm[45, 0]) / 2  # noqa: E731
    nose_y = lambda lm: (lm[31, 1] + lm[35, 1]) / 2 - (lm[36, 1] + lm[45, 1]) / 2  # noqa: E731
    assert nose_x(left) > nose_x(front) + 5  # the nose towards the image's right
    assert nose_y(up) < nose_y(front) - 3  # the nose rises towards the eyes
    # The ROS face frame of a face looking into the camera: x (out of the face) along the camera's -z.
    x, y, z, w = face_frame_quaternion(rotation_from_angles(0, 0, 0))
    assert (x, y, z, w) == pytest.approx((0.5, 0.5, -0.5, 0.5))


def test_real_faces_looking_into_the_camera_and_their_mirror_images(nets, photos):
    landmark_net, _ = nets
    for name in ("astronaut", "grace_hopper"):
        photo = photos[name]
        image, box = scaled(photo.image, photo.face, 110)
        pose = head_pose(landmark_net.landmarks(image, box), image.shape[1], image.shape[0])
        assert abs(pose.yaw) < 10 and abs(pose.pitch) < 10 and abs(pose.roll) < 10, (name, pose)
        assert looking(pose, 20, 20)
        mirrored = cv2.flip(image, 1)
        mirror_box = (image.shape[1] - box[0] - box[2], *box[1:])
        flipped = head_pose(landmark_net.landmarks(mirrored, mirror_box), image.shape[1], image.shape[0])
        assert flipped.roll == pytest.approx(-pose.roll, abs=3) and flipped.yaw == pytest.approx(-pose.yaw, abs=4)


def test_a_head_turned_away_has_no_pose_and_is_uncertain(nets, photos):
    landmark_net, _ = nets
    photo = photos["cameraman"]  # a face in profile behind a camera
    pose = head_pose(landmark_net.landmarks(photo.image, photo.face), 512, 512)
    assert pose is None and looking(pose, 20, 20) is None
    quality = face_quality(photo.face, sharpness(photo.image, photo.face), None)
    assert uncertain_reason(quality, 0.0, True, LIMITS) == "turned_away"


def test_quality_reasons_on_a_real_face(photos):
    photo = photos["astronaut"]
    image, box = scaled(photo.image, photo.face, 80)
    sharp = sharpness(image, box)
    blurred = sharpness(cv2.GaussianBlur(image, (0, 0), 2), box)
    assert sharp > 2 * LIMITS.min_sharpness > 2 * blurred
    frontal = face_quality(box, sharp, None).model_copy(update={"yaw": 3.0, "pitch": -2.0})
    assert uncertain_reason(frontal, 0.0, True, LIMITS) is None
    assert uncertain_reason(frontal.model_copy(update={"sharpness": blurred}), 0.0, True, LIMITS) == "blurred"
    assert uncertain_reason(frontal.model_copy(update={"yaw": 60.0}), 0.0, True, LIMITS) == "turned_away"
    assert uncertain_reason(frontal.model_copy(update={"face_px": 20.0}), 0.0, True, LIMITS) == "too_small"
    assert uncertain_reason(frontal, outside_share((-40, 10, 80, 80), 640, 480), True, LIMITS) == "cut_off"
    assert outside_share((10, 10, 80, 80), 640, 480) == 0 and outside_share((600, 10, 80, 80), 640, 480) == 0.5
    assert sharpness(image, (-50, -50, 30, 30)) is None  # a box with no pixels in the frame
