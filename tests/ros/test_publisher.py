"""`serve --ros` on the bundled sample clip, in its own process, watched over loopback by a second Cyclone DDS
participant (this test's): topic names, type names, QoS and type hashes of every publication, and what arrives on
each topic. Also: without --ros no DDS code is imported, and a DDS domain that cannot start stops the service at
start with one line naming CYCLONEDDS_URI."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.core import Policy

from service.config import SAMPLE_CLIP
from service.ros.messages import TYPE_HASHES, Expression, IdsList, NormalizedRegionOfInterest2D, String
from service.ros.publisher import RosPublisher
from service.ros.settings import HRI_EXPRESSIONS, RosSettings
from tests.ros.dds import own_participant, reader, take_until

HRI_CONSTANTS = set(HRI_EXPRESSIONS.values())


def service_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
    env.update(HF_HUB_OFFLINE="1", **extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dp():
    return own_participant()


@pytest.fixture
def service():
    """python -m service serve --ros on the sample clip (looped), in the test's loopback DDS domain."""
    process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--ros", "--source", f"cam={SAMPLE_CLIP}",
                                "--port", str(free_port())], env=service_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    yield process
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def near_now(stamp) -> bool:
    return abs(stamp.sec + stamp.nanosec / 1e9 - time.time()) < 120  # ROS time = wall clock at capture


def test_every_topic_name_type_qos_and_content(service, dp):
    publications = BuiltinDataReader(dp, BuiltinTopicDcpsPublication)
    tracked = reader(dp, "/humans/faces/tracked", IdsList)
    prompts = reader(dp, "/emotion_perception/prompt", String)
    chats = reader(dp, "/emotion_perception/messages", String)

    lists = take_until(tracked, lambda samples: any(s.ids for s in samples), timeout=120)
    face_id = next(s.ids[0] for s in lists if s.ids)
    assert all(near_now(s.header.stamp) and s.header.frame_id in ("cam", "") for s in lists)
    rois = reader(dp, f"/humans/faces/{face_id}/roi", NormalizedRegionOfInterest2D)
    expressions = reader(dp, f"/humans/faces/{face_id}/expression", Expression)

    expression = take_until(expressions, bool, timeout=120)[0]
    assert expression.expression in HRI_CONSTANTS and 0 <= expression.confidence <= 1
    assert -1 <= expression.valence <= 1 and -1 <= expression.arousal <= 1 and expression.valence != 0
    assert expression.header.frame_id == "cam" and near_now(expression.header.stamp)
    roi = take_until(rois, bool)[0]
    assert 0 <= roi.xmin < roi.xmax <= 1 and 0 <= roi.ymin < roi.ymax <= 1 and roi.c == 1.0
    assert roi.header.frame_id == "cam" and near_now(roi.header.stamp)
    prompt = take_until(prompts, bool)[0]
    assert prompt.data.strip()
    messages = json.loads(take_until(chats, bool)[0].data)
    assert [m["role"] for m in messages][:1] == ["system"] and all(m["content"] for m in messages)

    expected = {
        "rt/humans/faces/tracked": IdsList,
        "rt/emotion_perception/prompt": String,
        "rt/emotion_perception/messages": String,
        f"rt/humans/faces/{face_id}/roi": NormalizedRegionOfInterest2D,
        f"rt/humans/faces/{face_id}/expression": Expression,
    }
    seen = {}
    take_until(publications, lambda samples: expected.keys() <= (seen.update({s.topic_name: s for s in samples})
                                                                 or seen.keys()))
    for topic, message_type in expected.items():
        endpoint = seen[topic]
        assert endpoint.type_name == message_type.__idl_typename__, topic
        assert isinstance(endpoint.qos[Policy.Reliability], Policy.Reliability.Reliable), topic
        assert endpoint.qos[Policy.Durability] == Policy.Durability.Volatile, topic
        assert endpoint.qos[Policy.History] == Policy.History.KeepLast(10), topic
        assert endpoint.qos[Policy.Userdata].data == f"typehash={TYPE_HASHES[message_type]};".encode(), topic
    assert service.poll() is None  # still serving


def test_face_ids_are_unique_per_run_and_the_tracked_list_is_repeated(dp):
    from service.state import LiveState

    clock = [0.0]
    state = LiveState()
    state.add_source("cam-2", "camera")
    publisher = RosPublisher(RosSettings(tracked_period_s=1.0), state, lambda source, t: IdsList().header,
                             monotonic=lambda: clock[0])
    other_run = RosPublisher(RosSettings(), state, lambda source, t: IdsList().header)
    assert publisher.face_id("cam-2", 3) == f"{publisher.tag}_cam_2_3" and publisher.tag != other_run.tag
    tracked = reader(dp, "/humans/faces/tracked", IdsList)
    publisher.poll()  # the first list (empty), then nothing new until a change or a second passed
    state.track_seen("cam-2", 3, (10, 10, 20, 20), 1.0, 100, 50)
    publisher.poll()  # a change: at once
    clock[0] = 0.5
    publisher.poll()  # no change, half a second: nothing
    clock[0] = 1.6
    publisher.poll()  # no change, a second passed: again
    lists = take_until(tracked, lambda samples: len(samples) >= 3)
    lists += tracked.take(N=10)  # none more (delivery inside one process is synchronous)
    assert [s.ids for s in lists] == [[], [f"{publisher.tag}_cam_2_3"], [f"{publisher.tag}_cam_2_3"]]


def test_without_ros_no_dds_code_is_imported():
    code = ("import sys\n"
            "from fastapi.testclient import TestClient\n"
            "from service.api import create_app\n"
            "from service.config import SAMPLE_CLIP, Settings\n"
            "with TestClient(create_app(Settings(_env_file=None), sources=[str(SAMPLE_CLIP)]),\n"
            "                base_url='http://localhost') as client:\n"
            "    assert client.get('/readyz').status_code in (200, 503)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('cyclonedds', 'service.ros'))))\n")
    result = subprocess.run([sys.executable, "-c", code], env=service_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    # the settings (pure pydantic) and the switch (pure Python), nothing of DDS
    assert result.stdout.strip() == "['service.ros', 'service.ros.settings', 'service.ros.wiring']"


def test_a_bad_cyclonedds_uri_stops_serve_ros_at_start_with_one_line():
    bad = "<CycloneDDS><Domain><General><Interfaces><NetworkInterface name=\"nosuch0\"/></Interfaces>" \
          "</General></Domain></CycloneDDS>"
    result = subprocess.run([sys.executable, "-m", "service", "serve", "--ros", "--source", str(SAMPLE_CLIP),
                             "--port", str(free_port())], env=service_env(CYCLONEDDS_URI=bad), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start DDS domain") and "CYCLONEDDS_URI" in last
