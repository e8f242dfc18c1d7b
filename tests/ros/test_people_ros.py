"""People over ROS 2 (ROS4HRI): each face's pose as the TF frame face_<id> on /tf, persons on
/humans/persons/tracked and /humans/persons/<id>/face_id, and an uncertain face's expression at confidence 0.
The publisher reads a LiveState with a real reading of the astronaut photograph (face-api.js landmarks)."""

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from service.emotions import emotion_event
from service.events import FaceQuality, FaceReading, HeadPose
from service.people.pose import face_frame_quaternion, head_pose
from service.ros import messages as m
from service.ros.messages import Expression, IdsList, String, TFMessage
from service.ros.publisher import RosPublisher, face_transform
from service.ros.settings import RosSettings
from service.state import LiveState
from tests.people.conftest import reading, window
from tests.ros.dds import own_participant, reader, take_until


@pytest.fixture(scope="module")
def dp():
    return own_participant()


def test_tf_message_bytes_equal_rosbags():
    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    ours = m.TFMessage([face_transform(m.Header(m.Time(5, 6), "cam"), "face_x", (0.1, -0.2, 1.5),
                                       (0.1, 0.2, 0.3, 0.9))])
    theirs = types["tf2_msgs/msg/TFMessage"](transforms=[types["geometry_msgs/msg/TransformStamped"](
        header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=5, nanosec=6),
                                            frame_id="cam"),
        child_frame_id="face_x", transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=0.1, y=-0.2, z=1.5),
            rotation=types["geometry_msgs/msg/Quaternion"](x=0.1, y=0.2, z=0.3, w=0.9)))])
    assert ours.serialize() == bytes(store.serialize_cdr(theirs, "tf2_msgs/msg/TFMessage"))


def test_faces_as_tf_frames_persons_and_uncertain_expressions(dp, astronaut_image):
    from service.faces.nets import LandmarkNet

    box = (172.0, 55.0, 105.0, 115.0)
    pose = head_pose(LandmarkNet().landmarks(astronaut_image, box), 512, 512)
    face = FaceReading(person_id=5, quality=FaceQuality(face_px=115, sharpness=500, yaw=pose.yaw, pitch=pose.pitch),
                       head_pose=HeadPose(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll), looking=True,
                       position_m=tuple(pose.translation), orientation_xyzw=face_frame_quaternion(pose.rotation))
    state = LiveState()
    state.add_source("cam", "camera")
    state.track_seen("cam", 9, box, 1.0, 512, 512, face)
    publisher = RosPublisher(RosSettings(), state, lambda source, t: m.Header(m.Time(int(t), 0), source))
    face_id, person_id = publisher.face_id("cam", 9), publisher.person_id("cam", 5)
    tf = reader(dp, "/tf", TFMessage)
    persons = reader(dp, "/humans/persons/tracked", IdsList)
    publisher.poll()  # creates the person's face_id writer; a reader of it now gets the next one
    face_ids = reader(dp, f"/humans/persons/{person_id}/face_id", String)
    state.track_seen("cam", 9, box, 1.125, 512, 512, face)
    publisher.poll()
    publisher._last_tracked_at = -10.0  # the tracked lists again (as every tracked_period_s)
    publisher.poll()
    (transform,) = take_until(tf, bool)[0].transforms
    assert transform.child_frame_id == f"face_{face_id}" and transform.header.frame_id == "cam"
    position = transform.transform.translation
    assert 0.3 < position.z < 3 and abs(position.x) < 0.5  # in front of the camera, metres
    q = transform.transform.rotation
    assert np.isclose(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2, 1)
    assert take_until(persons, bool)[0].ids == [person_id]
    assert take_until(face_ids, bool)[0].data == face_id

    expressions = reader(dp, f"/humans/faces/{face_id}/expression", Expression)
    for uncertain in (None, "turned_away"):
        event = emotion_event(window(reading(uncertain_reason=uncertain)), np.array([0.9, 0.05, 0.05]),
                              ["happy", "sad", "neutral"], "cam", "m").model_copy(update={"track_id": 9})
        publisher.on_event(event)
    sure, unsure = take_until(expressions, lambda samples: len(samples) >= 2)
    assert sure.confidence == pytest.approx(0.9) and unsure.confidence == 0 and unsure.expression == "happy"
