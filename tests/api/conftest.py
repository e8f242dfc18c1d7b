import pytest

from service.api import create_app
from tests.server import running_server


@pytest.fixture(scope="module")
def live_settings(tmp_path_factory):
    from service.config import Settings

    return Settings(_env_file=None, heartbeat_s=0.25, reconnect_backoff_s=0.1, reconnect_max_s=0.5,
                    max_upload_mb=1.0, sync_upload_mb=0.5, stall_s=30)


@pytest.fixture(scope="module")
def live_server(astronaut_clip, live_settings):
    """The service watching a looped file source of a real face (the astronaut clip)."""
    app = create_app(live_settings, sources=[f"face={astronaut_clip}"])
    with running_server(app) as base:
        yield base


@pytest.fixture(scope="module")
def clip_spool(tmp_path_factory):
    """The upload spool of clip_server: where its uploads are written while they arrive and are analysed."""
    return tmp_path_factory.mktemp("clip-spool")


@pytest.fixture(scope="module")
def clip_server(clip_spool):
    """Uploads only, no live sources, a bearer token required."""
    from service.config import Settings

    settings = Settings(_env_file=None, token="s3cret", max_upload_mb=1.0, sync_upload_mb=0.5, spool_dir=clip_spool)
    with running_server(create_app(settings, live=False)) as base:
        yield base
