"""The process's one DDS participant, and ROS 2's conventions on top of DDS: topic names (`/a/b` -> `rt/a/b`),
QoS, and the type hash Jazzy puts in USER_DATA. Like any ROS 2 node, ROS_DOMAIN_ID picks the domain (default 0) and
CYCLONEDDS_URI configures Cyclone DDS (interfaces, peers, multicast)."""

from __future__ import annotations

import os
import threading

from cyclonedds.core import DDSException, Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.util import duration

from service.errors import ServiceError
from service.ros.messages import TYPE_HASHES


class RosError(ServiceError):
    """ROS 2 / DDS cannot be used as configured (one line, naming the variable to fix)."""


_lock = threading.Lock()
_participants: dict[int, DomainParticipant] = {}


def domain_id() -> int:
    text = os.environ.get("ROS_DOMAIN_ID", "").strip() or "0"
    if not text.isdigit() or int(text) > 232:  # 232: the largest id whose UDP ports still fit (REP/DDS port map)
        raise RosError(f"ROS_DOMAIN_ID={text!r} is not a domain id (0..232)")
    return int(text)


def participant() -> DomainParticipant:
    """The participant of this process in ROS_DOMAIN_ID (created once; publisher and image sources share it)."""
    domain = domain_id()
    with _lock:
        if domain not in _participants:
            try:
                _participants[domain] = DomainParticipant(domain)
            except DDSException as exc:
                uri = os.environ.get("CYCLONEDDS_URI")
                where = ("CYCLONEDDS_URI (Cyclone DDS printed why above)" if uri
                         else "the network interfaces (CYCLONEDDS_URI unset)")
                raise RosError(f"cannot start DDS domain {domain} (ROS_DOMAIN_ID): check {where}: {exc}") from None
        return _participants[domain]


def dds_topic_name(ros_name: str) -> str:
    """ROS 2's mangling of a topic name for DDS (rmw: ros_topic_prefix "rt")."""
    return "rt" + (ros_name if ros_name.startswith("/") else "/" + ros_name)


def type_hash_userdata(message_type: type) -> Policy.Userdata:
    """What Jazzy's rmw_cyclonedds puts in a reader's or writer's USER_DATA, so `ros2 topic info -v` knows the type's
    hash; Humble's ignores it."""
    return Policy.Userdata(f"typehash={TYPE_HASHES[message_type]};".encode())


def output_qos(message_type: type, depth: int = 10) -> Qos:
    """Our publications: reliable, volatile, keep last `depth` (ROS 2's default "reliable" profile)."""
    return Qos(Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.Durability.Volatile,
               Policy.History.KeepLast(depth), type_hash_userdata(message_type))


def sensor_qos(message_type: type) -> Qos:
    """Camera topics: a best-effort reader matches best-effort (camera drivers' sensor data profile) and reliable
    writers alike; only the newest image matters."""
    return Qos(Policy.Reliability.BestEffort, Policy.Durability.Volatile, Policy.History.KeepLast(1),
               type_hash_userdata(message_type))
