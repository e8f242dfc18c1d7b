"""Our DDS types against the reference: the CDR bytes of each message equal those of `rosbags`' serializer for the
same ROS 2 definitions (hri_msgs from its .msg text), and the RIHS01 type hashes we send equal rosbags'."""

import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from service.ros import messages as m
from tests.ros.hri_msgs import DEFINITIONS


@pytest.fixture(scope="module")
def typestore():
    store = get_typestore(Stores.ROS2_JAZZY)
    for name, text in DEFINITIONS.items():
        store.register(get_types_from_msg(text, name))
    return store


def reference(typestore, name: str, **fields):
    return typestore.types[name](**fields)


def header_pair(typestore):
    ours = m.Header(m.Time(1_764_000_000, 123_456_789), "camera_optical_frame")
    theirs = reference(typestore, "std_msgs/msg/Header",
                       stamp=reference(typestore, "builtin_interfaces/msg/Time", sec=1_764_000_000,
                                       nanosec=123_456_789), frame_id="camera_optical_frame")
    return ours, theirs


def cases(typestore):
    header, ref_header = header_pair(typestore)
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8)
    return [
        (m.Expression(header, "happy", 0.81, -0.27, 0.93),
         reference(typestore, "hri_msgs/msg/Expression", header=ref_header, expression="happy",
                   valence=np.float32(0.81), arousal=np.float32(-0.27), confidence=np.float32(0.93))),
        (m.IdsList(header, ["kqzt_camera0_1", "kqzt_camera0_12", ""]),
         reference(typestore, "hri_msgs/msg/IdsList", header=ref_header,
                   ids=["kqzt_camera0_1", "kqzt_camera0_12", ""])),
        (m.IdsList(header, []), reference(typestore, "hri_msgs/msg/IdsList", header=ref_header, ids=[])),
        (m.NormalizedRegionOfInterest2D(header, 0.1, 0.2, 0.55, 0.9, 1.0),
         reference(typestore, "hri_msgs/msg/NormalizedRegionOfInterest2D", header=ref_header, xmin=np.float32(0.1),
                   ymin=np.float32(0.2), xmax=np.float32(0.55), ymax=np.float32(0.9), c=np.float32(1.0))),
        (m.String("The person in front of you looks happy."),
         reference(typestore, "std_msgs/msg/String", data="The person in front of you looks happy.")),
        (m.Image(header, 2, 3, "rgb8", 0, 9, pixels.tobytes()),
         reference(typestore, "sensor_msgs/msg/Image", header=ref_header, height=2, width=3, encoding="rgb8",
                   is_bigendian=0, step=9, data=pixels)),
        (m.CompressedImage(header, "jpeg", b"\xff\xd8\xff\xe0abc"),
         reference(typestore, "sensor_msgs/msg/CompressedImage", header=ref_header, format="jpeg",
                   data=np.frombuffer(b"\xff\xd8\xff\xe0abc", np.uint8))),
    ]


def test_cdr_bytes_equal_rosbags(typestore):
    for ours, theirs in cases(typestore):
        name = m.ros_type_name(type(ours))
        assert ours.serialize() == bytes(typestore.serialize_cdr(theirs, name)), name
        # and what rosbags writes reads back into the same message (float32 fields as float32 values)
        assert type(ours).deserialize(bytes(typestore.serialize_cdr(theirs, name))).serialize() == ours.serialize()


def test_type_names_and_hashes_are_ros_2s(typestore):
    for message_type, type_hash in m.TYPE_HASHES.items():
        name = m.ros_type_name(message_type)
        package, _, short = name.split("/")
        assert message_type.__idl_typename__ == f"{package}::msg::dds_::{short}_"
        assert type_hash == typestore.hash_rihs01(name), name
