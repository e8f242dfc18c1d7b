"""A real Triton Inference Server for the remote engine's tests: the tritonserver of the nvidia-pytriton wheel that
`make triton-server` (called by `make test`) unpacks, serving what `python -m export triton --backend python` wrote
for the embedded bundle (bench/triton_server.py). Tests that kill or pause a server start their own."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.triton_server import TritonServer, missing_reason
from export.triton import write_triton_repository
from service.bundle import BUNDLE_JSON, ModelBundle
from service.config import ASSETS_DIR, DEFAULT_BUNDLE, FER_BUNDLE

FACEAPI_BUNDLE = ASSETS_DIR / "bundles" / "faceapi-expression"


def needs_tritonserver():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)


def relabelled_bundle(directory):
    """The embedded bundle under another name with its labels in reverse order (a model of the same emotions), the
    whole graph only (no frame encoder and window head)."""
    shutil.copytree(FER_BUNDLE, directory)
    spec = json.loads((directory / BUNDLE_JSON).read_text())
    spec["name"], spec["labels"] = "fer-relabelled", spec["labels"][::-1]
    del spec["frame_cache"]
    (directory / BUNDLE_JSON).write_text(json.dumps(spec))
    return ModelBundle.load(directory)


def served_copy(repo, model: str, name: str, edit) -> None:
    """Another model of the repository: `model`'s directory under `name`, its config.pbtxt text edited."""
    shutil.copytree(repo / model, repo / name)
    config = repo / name / "config.pbtxt"
    config.write_text(edit(config.read_text().replace(f'name: "{model}"', f'name: "{name}"')))


@pytest.fixture(scope="session")
def triton_repository(tmp_path_factory):
    """fer's bundle (whole graph, frame encoder, window head), a relabelled copy with float32 pixels, the face-api.js
    expression bundle (112-px RGB crops, other label order, a calibrated temperature), the default ensemble, and two
    broken ones: a contract that says float32 pixels where the graph takes uint8, and no contract at all. One ONNX
    Runtime thread each (the test machine has two cores)."""
    repo = tmp_path_factory.mktemp("triton") / "models"
    write_triton_repository(ModelBundle.load(FER_BUNDLE), repo, backend="python", threads=1)
    write_triton_repository(relabelled_bundle(tmp_path_factory.mktemp("relabelled") / "fer-relabelled"), repo,
                            backend="python", threads=1, pixels="float32")
    write_triton_repository(ModelBundle.load(FACEAPI_BUNDLE), repo, backend="python", threads=1)
    # the service's default, which the fleet compose file names
    write_triton_repository(ModelBundle.load(DEFAULT_BUNDLE), repo, backend="python", threads=1)
    served_copy(repo, "fer-mini-xception", "fer-wrong-contract",
                lambda text: text.replace('\\"pixels\\":\\"uint8\\"', '\\"pixels\\":\\"float32\\"'))
    served_copy(repo, "fer-mini-xception", "fer-no-contract",
                lambda text: text.replace('key: "emotion_contract"', 'key: "something_else"'))
    return repo


@pytest.fixture(scope="session")
def triton_server(triton_repository, tmp_path_factory):
    """One server for the tests that leave it running."""
    needs_tritonserver()
    server = TritonServer(triton_repository, tmp_path_factory.mktemp("triton-log") / "tritonserver.log")
    with server:
        yield server


@pytest.fixture
def own_triton_server(triton_repository, tmp_path):
    """A server of the test's own, to kill, pause and restart."""
    needs_tritonserver()
    server = TritonServer(triton_repository, tmp_path / "tritonserver.log")
    with server:
        yield server


@pytest.fixture
def settings(settings):
    """The Triton tests serve fer's mini-Xception (the smallest embedded bundle) on both sides: the robot's local
    model is the one in the repository, not the service's default."""
    return settings.model_copy(update={"model": FER_BUNDLE})
