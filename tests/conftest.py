import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a model hub

import pytest

from service.config import Settings


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory):
    from tests.clips import astronaut_clip as make

    return make(tmp_path_factory.mktemp("clips") / "astronaut.mp4", size=(640, 480), fps=25, seconds=3.0)


@pytest.fixture(scope="session")
def blank_clip(tmp_path_factory):
    from tests.clips import blank_clip as make

    return make(tmp_path_factory.mktemp("clips") / "blank.mp4")


@pytest.fixture(scope="session")
def astronaut_image():
    from tests.clips import astronaut_bgr

    return astronaut_bgr()


@pytest.fixture(scope="session")
def faceapi_package():
    """npm @vladmandic/face-api as `make test` installs it (.cache/faceapi-node); its tests skip, saying so, without."""
    from export.faceapi_package import FaceApiNotFound, find_faceapi

    try:
        return find_faceapi()
    except FaceApiNotFound as exc:
        pytest.skip(f"{exc} (make test installs it)")


@pytest.fixture
def settings(monkeypatch):
    # Tests must not read a developer's .env or EMOTION_* variables.
    for key in list(os.environ):
        if key.startswith("EMOTION_"):
            monkeypatch.delenv(key)
    return Settings(_env_file=None)
