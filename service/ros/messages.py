"""The ROS 2 messages we publish and read, as Cyclone DDS types with ROS 2's naming: a DDS type
`<pkg>::msg::dds_::<Type>_` carried in plain CDR (XCDR1), which is what rmw_cyclonedds puts on the wire.

Field order and types follow the .msg files (hri_msgs 2.0.0; std_msgs, sensor_msgs, geometry_msgs, tf2_msgs,
builtin_interfaces of ROS 2 Humble/Jazzy, unchanged between the two); tests/ros/test_cdr.py checks the bytes against
`rosbags`' serializer and the type hashes against its RIHS01 hashes. `uint8[]` is declared `sequence[uint8]` (what DDS type discovery
advertises) but read and written as Python `bytes` (`_octets_as_bytes`): the same CDR, without a Python int per
pixel (a 640x480 bgr8 image took ~115 ms to read as a list; as bytes, a copy)."""

# No `from __future__ import annotations`: cyclonedds resolves the field annotations as objects.
from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl._machinery import BytesMachine
from cyclonedds.idl.types import float32, float64, int32, sequence, uint8, uint32


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


@dataclass
class IdsList(IdlStruct, typename="hri_msgs::msg::dds_::IdsList_"):
    header: Header = field(default_factory=Header)
    ids: sequence[str] = field(default_factory=list)


@dataclass
class NormalizedRegionOfInterest2D(IdlStruct, typename="hri_msgs::msg::dds_::NormalizedRegionOfInterest2D_"):
    header: Header = field(default_factory=Header)
    xmin: float32 = 0.0
    ymin: float32 = 0.0
    xmax: float32 = 0.0
    ymax: float32 = 0.0
    c: float32 = 0.0


@dataclass
class Expression(IdlStruct, typename="hri_msgs::msg::dds_::Expression_"):
    header: Header = field(default_factory=Header)
    expression: str = ""
    valence: float32 = 0.0
    arousal: float32 = 0.0
    confidence: float32 = 0.0


@dataclass
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = b""


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header = field(default_factory=Header)
    format: str = ""
    data: sequence[uint8] = b""


@dataclass
class Vector3(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Quaternion(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0
    w: float64 = 1.0


@dataclass
class Transform(IdlStruct, typename="geometry_msgs::msg::dds_::Transform_"):
    translation: Vector3 = field(default_factory=Vector3)
    rotation: Quaternion = field(default_factory=Quaternion)


@dataclass
class TransformStamped(IdlStruct, typename="geometry_msgs::msg::dds_::TransformStamped_"):
    header: Header = field(default_factory=Header)
    child_frame_id: str = ""
    transform: Transform = field(default_factory=Transform)


@dataclass
class TFMessage(IdlStruct, typename="tf2_msgs::msg::dds_::TFMessage_"):
    transforms: sequence[TransformStamped] = field(default_factory=list)


def _octets_as_bytes(message_type: type, member: str = "data") -> None:
    """Serialise a `sequence[uint8]` member with the machine cyclonedds uses for `bytes` annotations: both write a
    uint32 length and the octets (4-aligned) in XCDR1 and XCDR2 alike, so only the Python value differs."""
    idl = message_type.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        machine.members_machines[member] = BytesMachine()


_octets_as_bytes(Image)
_octets_as_bytes(CompressedImage)


# REP-2011 type description hashes (RIHS01), which Jazzy's rmw puts in the USER_DATA of readers and writers as
# "typehash=RIHS01_<hex>;". Computed with rosbags' Jazzy type store (hri_msgs from its .msg text); the test
# recomputes them. Humble's rmw neither sends nor reads them.
TYPE_HASHES: dict[type, str] = {
    Time: "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
    Header: "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    String: "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
    IdsList: "RIHS01_7e0812d1ac945c98fd3e393568d581ad0ab567f37b24eff633eab778c1bfe62d",
    NormalizedRegionOfInterest2D: "RIHS01_2e50c93f1ca166ee77af9a5424dc951ae4e452b740162a7f83c082d917dcaff5",
    Expression: "RIHS01_411b88e0604397d44775d8ec6a4bc69398fb0dfbfe864c33a40fa99ee85f1b00",
    Image: "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    CompressedImage: "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
    Vector3: "RIHS01_cc12fe83e4c02719f1ce8070bfd14aecd40f75a96696a67a2a1f37f7dbb0765d",
    Quaternion: "RIHS01_8a765f66778c8ff7c8ab94afcc590a2ed5325a1d9a076ffff38fbce36f458684",
    Transform: "RIHS01_beb83fbe698636351461f6f35d1abb20010c43d55374d81bd041f1ba2581fddc",
    TransformStamped: "RIHS01_0a241f87d04668d94099cbb5ba11691d5ad32c2f29682e4eb5653424bd275206",
    TFMessage: "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
}


def ros_type_name(message_type: type) -> str:
    """`hri_msgs::msg::dds_::Expression_` -> `hri_msgs/msg/Expression` (what ROS 2 tools print)."""
    package, _, _, name = message_type.__idl_typename__.split("::")
    return f"{package}/msg/{name.rstrip('_')}"
