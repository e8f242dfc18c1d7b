"""The server goes away, the robot does not: the live runtime on the looped sample clip with its windows on a real
tritonserver, which is killed and restarted, or hangs (SIGSTOP) and comes back, mid-stream. Every window is
classified exactly once (by the server or by the local fallback), the events' seq has no gap, and windows go back
to the server once it answers. How fast each switch is, is measured by `python -m bench fleet` (no timed
assertions here)."""

from collections import Counter

import numpy as np
import pytest

from service.config import SAMPLE_CLIP
from service.inference import LOCAL, create_engine, engine_status
from service.inference.base import close_engine
from service.inference.failover import adapt_window
from service.inference.triton_engine import parse_engine_url, window_compatible
from service.live.runtime import LiveRuntime
from service.windows import Window
from tests.server import wait_for
from tests.triton.test_remote_engine import remote_settings


class Stream:
    """The live runtime on the looped sample clip, every published event kept."""

    def __init__(self, settings, url: str):
        self.engine = create_engine(remote_settings(settings, url))
        self.runtime = LiveRuntime(settings, self.engine, [f"cam={SAMPLE_CLIP}"])
        self.events = []
        self.runtime.bus.add_sink(self.events.append)

    def emotions(self, engine: str | None = None) -> list:
        return [e for e in list(self.events) if e.type == "emotion" and (engine is None or e.engine == engine)]

    def wait_for_more(self, engine: str, count: int = 3, timeout: float = 90.0) -> None:
        seen = len(self.emotions(engine))
        wait_for(lambda: len(self.emotions(engine)) >= seen + count, timeout=timeout)

    def __enter__(self):
        self.runtime.start()
        return self

    def __exit__(self, *exc):
        self.runtime.stop()
        close_engine(self.engine)


def check_nothing_lost_or_doubled(stream: Stream) -> None:
    runtime, status = stream.runtime, engine_status(stream.engine)
    # Each window the face worker queued was classified once, by one engine: none dropped, none left, none twice.
    assert runtime.windows.dropped == 0 and len(runtime.windows) == 0
    assert runtime.windows.put_count == runtime.inference.windows_done == status.windows_remote + status.windows_local
    seqs = [e.seq for e in stream.events if e.source == "cam"]
    assert seqs == list(range(1, len(seqs) + 1))
    windows = Counter((e.track_id, e.t_end) for e in stream.emotions())
    assert max(windows.values()) == 1
    assert runtime.watchdog.restarts == {}  # the inference worker never looked stuck


def test_a_server_killed_and_restarted_mid_stream(own_triton_server, settings):
    url = f"triton://127.0.0.1:{own_triton_server.grpc_port}/fer-mini-xception"
    with Stream(settings, url) as stream:
        stream.wait_for_more(url)
        own_triton_server.kill()
        stream.wait_for_more(LOCAL)
        away = engine_status(stream.engine)
        assert away.status == "fallback" and away.where == LOCAL and away.last_error
        own_triton_server.start()
        stream.wait_for_more(url)
    check_nothing_lost_or_doubled(stream)
    status = engine_status(stream.engine)
    assert status.status == "remote" and status.switches == 2 and status.last_error is None
    engines = [e.engine for e in stream.emotions()]
    # remote, then local only, then remote only: one switch each way
    first_local, last_local = engines.index(LOCAL), len(engines) - 1 - engines[::-1].index(LOCAL)
    assert set(engines[:first_local]) == {url} and set(engines[first_local:last_local + 1]) == {LOCAL}
    assert set(engines[last_local + 1:]) == {url}


@pytest.mark.parametrize("scheme", ["triton", "triton+http"])
def test_a_server_that_hangs_is_left_for_the_local_fallback_and_used_again_once_it_answers(scheme, own_triton_server,
                                                                                          settings):
    port = own_triton_server.grpc_port if scheme == "triton" else own_triton_server.http_port
    url = f"{scheme}://127.0.0.1:{port}/fer-mini-xception"
    with Stream(settings, url) as stream:
        stream.wait_for_more(url)
        own_triton_server.pause()  # SIGSTOP: its sockets stay open, nothing answers
        try:
            stream.wait_for_more(LOCAL, count=6)
            away = engine_status(stream.engine)
            assert away.status == "fallback" and away.health_checks >= 1
            # the batch past its deadline, or a health check's connection that never got an answer
            assert any(late in away.last_error for late in ("DEADLINE_EXCEEDED", "no answer within", "timed out"))
        finally:
            own_triton_server.resume()
        stream.wait_for_more(url)
    check_nothing_lost_or_doubled(stream)


def test_windows_adapted_for_a_fallback_with_other_crops():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (16, 128, 128, 3), np.uint8)
    window = Window(4, rgb, None, 1.0, 3.0, (1.0, 2.0, 3.0, 4.0), tuple(range(100, 116)))
    from service.bundle import ModelBundle
    from service.config import FER_BUNDLE

    fer = ModelBundle.load(FER_BUNDLE).spec
    small = fer.model_copy(update={"num_frames": 8})
    adapted = adapt_window(window, small)
    assert adapted.faces.shape == (8, 64, 64, 1) and adapted.faces.dtype == np.uint8
    assert adapted.frame_ids == (100, 102, 104, 106, 109, 111, 113, 115)
    assert (adapted.track_id, adapted.t_end, adapted.box) == (4, 3.0, window.box)
    grey = (rgb[0].astype(np.float32) @ np.float32([0.299, 0.587, 0.114]))
    assert np.abs(adapted.faces[0, :, :, 0].astype(np.float32) - grey.reshape(64, 2, 64, 2).mean((1, 3))).max() <= 2
    assert window_compatible(fer, small) == ["num_frames 8 (windows are made for 16)"]


@pytest.mark.parametrize("url, address", [
    ("triton://gpu-server/fer", ("triton://gpu-server:8001/fer", "grpc", "gpu-server:8001", "fer")),
    ("triton+http://10.0.0.5:9000/duse-vitl14/", ("triton+http://10.0.0.5:9000/duse-vitl14", "http", "10.0.0.5:9000",
                                                   "duse-vitl14")),
    ("triton+grpc://[::1]/m", ("triton+grpc://[::1]:8001/m", "grpc", "[::1]:8001", "m")),
])
def test_engine_urls(url, address):
    parsed = parse_engine_url(url)
    assert (parsed.url, parsed.protocol, parsed.server, parsed.model) == address


@pytest.mark.parametrize("url", ["triton://host", "http://host:8000/m", "triton://host:99999/m", "triton://h/a/b"])
def test_bad_engine_urls(url):
    with pytest.raises(ValueError, match="expected local, triton://HOST"):
        parse_engine_url(url)
