"""docker/compose.fleet.yaml and the KServe example: the robot's settings, as compose passes them with their
defaults, are settings the service knows, and a robot started with them (the service as a process, not in its
container: there is no container runtime or GPU here) classifies on the test tritonserver."""

import re

import httpx
import yaml

from bench.service_process import ROOT, ServiceProcess
from service.config import SAMPLE_CLIP, Settings
from service.inference.triton_engine import parse_engine_url
from tests.server import wait_for

FLEET = ROOT / "docker" / "compose.fleet.yaml"


def with_defaults(value: str, **given) -> str:
    """A compose value with ${VAR:-default} replaced by `given[VAR]` or its default."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: given.get(m.group(1), m.group(2)), value)


def robot_environment(**given) -> dict[str, str]:
    robot = yaml.safe_load(FLEET.read_text())["services"]["robot"]
    return {name: with_defaults(value, **given) for name, value in robot["environment"].items()}


def test_the_fleet_compose_file():
    services = yaml.safe_load(FLEET.read_text())["services"]
    triton, robot = services["triton"], services["robot"]
    assert triton["image"].startswith("${TRITON_IMAGE:-nvcr.io/nvidia/tritonserver:")
    assert "--model-repository=/models" in triton["command"]
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert any(v.endswith(":/models:ro") for v in triton["volumes"]) and triton["profiles"] == ["server"]
    assert robot["profiles"] == ["robot"] and robot["devices"][0].endswith(":/dev/video0")
    environment = robot_environment()
    unknown = [n for n in environment if n.removeprefix("EMOTION_").lower() not in Settings.model_fields]
    assert unknown == []
    assert parse_engine_url(environment["EMOTION_ENGINE"]).url == "triton://triton:8001/expression-ensemble"


def test_the_kserve_example_is_marked_not_run():
    text = (ROOT / "docker" / "kserve-inferenceservice.yaml").read_text()
    manifest = yaml.safe_load(text)
    assert text.startswith("# NOT RUN HERE") and manifest["kind"] == "InferenceService"
    assert manifest["spec"]["predictor"]["model"]["modelFormat"]["name"] == "triton"


def test_a_robot_with_the_compose_settings_classifies_on_the_server(triton_server, tmp_path):
    environment = robot_environment(EMOTION_TRITON=triton_server.grpc_url)
    settings = {name.removeprefix("EMOTION_").lower(): value for name, value in environment.items()
                if value and name != "EMOTION_SOURCES"}
    robot = ServiceProcess(tmp_path / "robot.log", args=["--source", f"cam={SAMPLE_CLIP}"], **settings)
    try:
        engine = wait_for(lambda: (e := httpx.get(robot.base + "/v1/state").json()["engine"])["windows_remote"] and e,
                          timeout=120)
        assert engine["where"] == environment["EMOTION_ENGINE"] and engine["status"] == "remote"
    finally:
        robot.stop()
