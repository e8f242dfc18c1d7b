"""The client library and `python -m client` against a real service on 127.0.0.1: the embedded model sees the
astronaut clip's smiling face and says "happy"; every failure is one line and the documented exit status."""

import asyncio
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from client import ClientError, ClipFileError, EmotionClient, ServiceUnreachable
from service.api import create_app
from service.config import Settings
from tests.server import running_server, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def service_url(astronaut_clip):
    """The service as a robot runs it: a live source (the looped astronaut clip), clip uploads, a bearer token."""
    settings = Settings(_env_file=None, token=TOKEN, heartbeat_s=0.25, stall_s=30, max_upload_mb=1.0,
                        sync_upload_mb=0.5)
    with running_server(create_app(settings, sources=[f"face={astronaut_clip}"])) as base:
        yield base


@pytest.fixture(scope="module")
def uploads_url():
    """Uploads only, no token, and sync_upload_mb=0 so that the server itself answers every upload 202."""
    settings = Settings(_env_file=None, sync_upload_mb=0.0, max_upload_mb=1.0)
    with running_server(create_app(settings, live=False)) as base:
        yield base


@pytest.fixture
def closed_port_url():
    """A URL where nothing listens: a port the OS just handed out, closed again without listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def client(service_url):
    with EmotionClient(service_url, token=TOKEN) as client:
        yield client


def cli_env() -> dict:
    # The CLI reads EMOTION_URL / EMOTION_TOKEN: a developer's own must not leak into the tests.
    return {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}


def run_cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m client ARGS` from the repository root, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO_ROOT, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def assert_happy(report: dict, source: str = "astronaut.mp4") -> None:
    assert report["source"] == source and report["frames_decoded"] == 75
    assert [t["dominant_label"] for t in report["tracks"]] == ["happy"]
    emotions = [e for e in report["events"] if e["type"] == "emotion"]
    assert emotions and all(e["label"] == "happy" and "happy" in e["prompt"] for e in emotions)


# The library

def test_analyze_waits_for_the_timeline(client, astronaut_clip):
    assert_happy(client.analyze(astronaut_clip))


def test_analyze_in_background_polls_the_job(client, astronaut_clip):
    assert_happy(client.analyze(astronaut_clip, background=True, poll_interval=0.2))


def test_analyze_follows_a_202_the_client_did_not_ask_for(uploads_url, astronaut_clip):
    with EmotionClient(uploads_url) as client:  # no token: this server needs none
        assert_happy(client.analyze(astronaut_clip, poll_interval=0.2))


def test_state_models_health_ready(client):
    assert client.health() == {"status": "ok"}
    assert client.models()["active"] == "expression-ensemble"
    assert set(client.ready()) >= {"ready", "model", "sources"}
    assert list(client.state(source="face")["sources"]) == ["face"]
    with pytest.raises(ClientError) as refused:
        client.state(source="nosuch")
    assert refused.value.status == 404 and "face" in refused.value.detail  # the message lists the real sources


def test_stream_yields_emotion_events_as_dicts(client):
    async def first_emotions(n: int) -> list[dict]:
        events = []
        async for event in client.stream(source="face", types=["emotion"]):
            events.append(event)
            if len(events) == n:
                break
        return events

    events = asyncio.run(asyncio.wait_for(first_emotions(2), 60))
    assert all(e["type"] == "emotion" and e["source"] == "face" and e["label"] == "happy" for e in events)
    assert all("happy" in e["prompt"] and e["messages"][0]["role"] == "system" for e in events)
    assert client.stream_gaps.missed == 0  # counted on every event, the filtered-out ones too


def test_library_errors_say_what_went_wrong(service_url, closed_port_url, tmp_path):
    with EmotionClient(service_url, token="wrong") as client:
        with pytest.raises(ClientError) as refused:
            client.state()
        assert refused.value.status == 401 and "wrong token" in str(refused.value)

        async def first_event():
            async for event in client.stream():
                return event

        with pytest.raises(ClientError) as refused:
            asyncio.run(asyncio.wait_for(first_event(), 30))
        assert refused.value.status == 401 and "token" in str(refused.value)

    with EmotionClient(closed_port_url) as client:
        with pytest.raises(ServiceUnreachable, match="cannot reach the service at " + closed_port_url):
            client.health()
        # A missing clip is found before any request: the file error, not the connection's.
        with pytest.raises(ClipFileError, match="does not exist"):
            client.analyze(tmp_path / "missing.mp4")

    with pytest.raises(ValueError, match="http://HOST:PORT"):
        EmotionClient("127.0.0.1:8000")


def test_stream_retries_a_bounded_number_of_times():
    """A listener that hangs up on every connection: the stream tries 1 + reconnects times, then says why."""
    hang_ups, stop = [], threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.1)

        def hang_up_on_everyone():
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                hang_ups.append(1)
                connection.close()

        thread = threading.Thread(target=hang_up_on_everyone, daemon=True)
        thread.start()

        async def first_event(client):
            async for event in client.stream(reconnects=2, reconnect_delay=0.01):
                return event

        try:
            with EmotionClient(f"http://127.0.0.1:{listener.getsockname()[1]}") as client:
                with pytest.raises(ServiceUnreachable, match="did not accept a websocket"):
                    asyncio.run(asyncio.wait_for(first_event(client), 30))
        finally:
            stop.set()
            thread.join(5)
    assert len(hang_ups) == 3


def test_client_does_not_need_the_service_package():
    code = ("import sys, client, client.__main__; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('service', 'pydantic', 'fastapi')]")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=cli_env(), check=True, timeout=60)


# The command line

def test_cli_analyze_prints_the_timeline_and_writes_json(service_url, astronaut_clip, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli("--url", service_url, "--token", TOKEN, "analyze", str(astronaut_clip), "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("astronaut.mp4: 3.0 s, 640x480")
    assert "mostly happy" in result.stdout and "  happy " in result.stdout
    assert_happy(json.loads(out.read_text()))


def test_cli_takes_url_and_token_from_the_environment(service_url):
    env = cli_env() | {"EMOTION_URL": service_url, "EMOTION_TOKEN": TOKEN}
    result = run_cli("state", "--source", "face", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model expression-ensemble") and "face (file " in result.stdout


def test_cli_stream_prints_the_first_emotion_events(service_url):
    result = run_cli("--url", service_url, "--token", TOKEN, "stream", "--count", "3", "--types", "emotion")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "face" in line and "emotion" in line and "track" in line and "happy" in line
        assert "The person in front of you" in line  # the prompt, on the same line

    result = run_cli("--url", service_url, "--token", TOKEN, "stream", "--count", "2", "--types", "emotion",
                     "--jsonl", "--source", "face")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 2 and all(e["type"] == "emotion" and e["prompt"] for e in events)


def test_cli_stream_stops_cleanly_on_ctrl_c(service_url):
    # SIGINT restored to its default in the child: a test runner started in the background may ignore it.
    process = subprocess.Popen([sys.executable, "-m", "client", "--url", service_url, "--token", TOKEN, "stream"],
                               cwd=REPO_ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        with selectors.DefaultSelector() as selector:  # a bounded wait for the first event (heartbeats: 0.25 s)
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=60), "no event within 60 s"
        assert process.stdout.readline()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, 130) and "Traceback" not in stderr


def test_cli_state_shows_the_source_and_its_face(service_url):
    def labelled():
        result = run_cli("--url", service_url, "--token", TOKEN, "state", "--json", timeout=60)
        assert result.returncode == 0, result.stderr
        tracks = json.loads(result.stdout)["sources"]["face"]["tracks"]
        return any(t["label"] for t in tracks)

    wait_for(labelled, timeout=60, interval=0.5)
    result = run_cli("--url", service_url, "--token", TOKEN, "state")
    assert result.returncode == 0, result.stderr
    assert "face (file " in result.stdout and "open" in result.stdout
    assert "track " in result.stdout and "happy" in result.stdout


@pytest.mark.parametrize("command", [["state"], ["stream", "--count", "1"], ["analyze", "CLIP"]])
@pytest.mark.parametrize("token_args, words", [(["--token", "wrong"], ["wrong token", "--token"]),
                                               ([], ["token", "none was given"])])
def test_cli_wrong_or_missing_token_is_exit_1_naming_the_token(service_url, astronaut_clip, command, token_args,
                                                               words):
    command = [str(astronaut_clip) if word == "CLIP" else word for word in command]
    assert_one_line_error(run_cli("--url", service_url, *token_args, *command), 1, *words)


@pytest.mark.parametrize("command", [["state"], ["stream"], ["analyze", "CLIP"]])
def test_cli_unreachable_service_is_exit_2_naming_the_url(closed_port_url, astronaut_clip, command):
    command = [str(astronaut_clip) if word == "CLIP" else word for word in command]
    assert_one_line_error(run_cli("--url", closed_port_url, *command), 2, "cannot reach", closed_port_url)


def test_cli_missing_clip_is_exit_2_before_any_request(closed_port_url, tmp_path):
    missing = tmp_path / "missing.mp4"
    assert_one_line_error(run_cli("--url", closed_port_url, "analyze", str(missing)), 2, str(missing),
                          "does not exist")


def test_cli_bad_upload_is_exit_1_with_the_servers_detail(service_url, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello, this is text and not a video\n" * 10)
    result = run_cli("--url", service_url, "--token", TOKEN, "analyze", str(text))
    assert_one_line_error(result, 1, "422", "not a readable video", "notes.mp4")


@pytest.mark.parametrize("args, words", [
    (["stream", "--types", "emotion,smile"], ["unknown event type smile"]),
    (["--url", "localhost:8000", "state"], ["http://HOST:PORT"]),
    (["analyze", "CLIP", "--json", "/no/such/dir/out.json"], ["/no/such/dir"]),
])
def test_cli_usage_mistakes_are_exit_2(closed_port_url, astronaut_clip, args, words):
    args = [str(astronaut_clip) if word == "CLIP" else word for word in args]
    if "--url" not in args:
        args = ["--url", closed_port_url, *args]  # found before any request: no service needed
    assert_one_line_error(run_cli(*args), 2, *words)


def test_default_url_is_the_services_default_port():
    from urllib.parse import urlsplit

    from client import DEFAULT_URL
    from service.config import Settings

    assert urlsplit(DEFAULT_URL).port == Settings.model_fields["port"].default == 8765
