"""Cyclone DDS is an extra (`ros`) that the development install and both images include, and the compose file for
running beside ROS 2 nodes shares the host's network (DDS discovery) and passes the ROS variables on."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_ros_extra_is_pinned_and_in_dev_and_both_images():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["ros"] == ["cyclonedds==11.0.1"] and "rosbags==0.11.9" in extras["test"]
    assert "ros" in extras["dev"][0] and "test" in extras["dev"][0]
    for dockerfile in ("Dockerfile", "Dockerfile.cpu"):
        assert 'pip install --no-compile ".[ros]"' in (ROOT / "docker" / dockerfile).read_text(), dockerfile


def test_compose_ros_shares_the_host_network_and_the_ros_variables():
    emotion = yaml.safe_load((ROOT / "docker" / "compose.ros.yml").read_text())["services"]["emotion"]
    assert emotion["network_mode"] == "host" and emotion["command"] == ["serve", "--ros"]
    assert {"ROS_DOMAIN_ID", "CYCLONEDDS_URI"} <= set(emotion["environment"])
    assert "ros:/camera/image_raw/compressed" in emotion["environment"]["EMOTION_SOURCES"]
