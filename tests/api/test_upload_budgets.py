"""Upload budgets (issue 35): a clip over its decoding budget is refused from its header (413) or stopped when its
frames turn out to be; whatever bytes the clip decoder is given, only a ClipError comes out of it (Hypothesis);
background jobs are limited per client, refused before their body when the queue is full, and cancelled by DELETE;
slow bodies are cut with their files; connections are bounded; a full disk is a 507; job ids say which run they
belong to. Tiny clips made here, limits scaled down to them."""

from __future__ import annotations

import os
import socket
import threading
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from bench.hostile_clips import black_clip, decoding_bomb, looped_clip, lying_clip, raw_h264
from service.api import create_app
from service.api.server import uvicorn_options
from service.config import Settings
from service.errors import ClipError
from service.ingest import ClipBudget, ClipDecoder, ClipInfo, ClipOverBudget
from service.ingest.frame_source import FrameLimits
from tests.server import running_server, wait_for

AUTH = {"Authorization": "Bearer s3cret"}
LIMITS = dict(max_frame_side=1024, max_frame_pixels=1024 * 768, max_clip_pixels=200e6, clip_work_side=1024)


# ---- the budget from the header, and while decoding -----------------------------------------------------------------

def test_the_header_of_the_issue_35_bomb_is_over_the_default_budget():
    budget = ClipBudget.of(Settings(_env_file=None))
    bomb = ClipInfo(path=None, width=3840, height=2160, fps=60.0, duration=590.0, frame_count=35400)
    assert "293.6 gigapixels (35400 frames of 3840x2160)" in budget.problem(bomb)
    assert "max_frame_side 4096" in budget.problem(ClipInfo(None, 8192, 8192, 30.0, 0.1, 3))
    ten_minutes_hd = ClipInfo(None, 1920, 1080, 30.0, 600.0, 18000)
    assert budget.problem(ten_minutes_hd) is None  # the largest clip a robot's user would send passes
    assert budget.problem(ClipInfo(None, 1920, 1080, 30.0, None, None)) is None  # unknown length: decoding decides


def test_a_header_that_lies_about_frame_size_or_length_is_stopped_while_decoding(tmp_path):
    small = FrameLimits(max_side=256, max_pixels=256 * 256, max_aspect=8.0)
    lie = lying_clip(tmp_path / "lie.h264", said=(64, 48), real=(640, 480))
    decoder = ClipDecoder(lie, ClipBudget(small))
    assert (decoder.info.width, decoder.info.height) == (64, 48)
    with pytest.raises(ClipOverBudget, match="header said 64x48, but a frame is over the frame limits: a 640x480"):
        list(decoder)
    endless = tmp_path / "endless.h264"  # no header says how long: 40 frames against a budget of 30
    endless.write_bytes(raw_h264(64, 48, 40))
    decoder = ClipDecoder(endless, ClipBudget(small, max_pixels=30 * 64 * 48))
    with pytest.raises(ClipOverBudget, match="decodes past its budget"):
        list(decoder)
    assert decoder.pixels_decoded == 31 * 64 * 48


def test_frames_over_the_working_side_are_scaled_at_once(tmp_path):
    clip = black_clip(tmp_path / "wide.mp4", 640, 360, 3)
    decoder = ClipDecoder(clip, ClipBudget(max_pixels=1e9, work_side=320))
    assert [f.image.shape for f in decoder] == [(180, 320, 3)] * 3 and decoder.work_size == (320, 180)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> bytes:
    return black_clip(tmp_path_factory.mktemp("fuzz") / "small.mp4", 96, 64, 4).read_bytes()


HOSTILE = hypothesis_settings(max_examples=120, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
BUDGET = ClipBudget(FrameLimits(max_side=128, max_pixels=128 * 96, max_aspect=4.0), max_seconds=5,
                    max_pixels=96 * 64 * 6, work_side=64)


def _decode_within_budget(path) -> None:
    """Nothing but a ClipError comes out, and every frame handed on is within the budget."""
    try:
        decoder = ClipDecoder(path, BUDGET)
        for frame in decoder:
            assert max(frame.image.shape[:2]) <= BUDGET.work_side
        assert decoder.pixels_decoded <= BUDGET.max_pixels
    except ClipError:
        pass


@HOSTILE
@given(data=st.binary(min_size=1, max_size=4096))
def test_random_bytes_are_clip_errors(tmp_path, data):
    path = tmp_path / "random.mp4"
    path.write_bytes(data)
    _decode_within_budget(path)


@HOSTILE
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=24),
       cut=st.integers(16, 10**6))
def test_damaged_clips_are_clip_errors_or_frames_within_the_budget(tmp_path, small_clip, edits, cut):
    data = bytearray(small_clip[:max(16, cut % len(small_clip) + 1)])
    for where, value in edits:
        data[where % len(data)] = value
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(data))
    _decode_within_budget(path)


@HOSTILE
@given(width=st.sampled_from([2, 16, 130, 200, 512]), height=st.sampled_from([2, 16, 96, 130]),
       frames=st.integers(1, 8), raw=st.booleans())
def test_clips_of_absurd_sizes_are_refused_or_decoded_within_the_budget(tmp_path, width, height, frames, raw):
    path = tmp_path / ("absurd.h264" if raw else "absurd.mp4")
    if raw:
        path.write_bytes(raw_h264(width, height, frames))
    else:
        black_clip(path, width, height, frames)
    _decode_within_budget(path)


# ---- the service -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def budget_settings(tmp_path_factory):
    return Settings(_env_file=None, token="s3cret", max_upload_mb=4.0, sync_upload_mb=2.0, clip_workers=1,
                    max_queued_clips=1, max_background_clips_per_client=1, max_uploads_in_progress=2,
                    upload_min_bytes_per_s=4000, upload_rate_window_s=1.0, clip_jobs_kept=2, max_connections=16, max_connections_per_client=6,
                    header_timeout_s=1.0, spool_dir=tmp_path_factory.mktemp("spool"), **LIMITS)


@pytest.fixture(scope="module")
def server(budget_settings):
    app = create_app(budget_settings, live=False)
    # A listen backlog above the test's bursts of connections (the limit's own, 16, would delay some by a SYN retry)
    with running_server(app, **uvicorn_options(budget_settings) | {"backlog": 128}) as base:
        yield base, app


@pytest.fixture(scope="module")
def clips(tmp_path_factory, astronaut_clip):
    folder = tmp_path_factory.mktemp("budget-clips")
    return {"long": looped_clip(astronaut_clip, folder / "long.mp4", 20).read_bytes(),  # 525 frames, 161 Mpx
            "bomb": decoding_bomb(folder / "bomb.mp4", 640, 480, 60, 20.0).read_bytes(),  # 1200 frames, 369 Mpx
            "huge": black_clip(folder / "huge.mp4", 1280, 720, 2).read_bytes(),
            "lie": lying_clip(folder / "lie.h264", said=(64, 48), real=(1280, 720)).read_bytes(),
            "blank": black_clip(folder / "blank.mp4", 64, 48, 5).read_bytes()}


def post(base, data: bytes, background=False, local="127.0.0.1", **headers):
    with httpx.Client(transport=httpx.HTTPTransport(local_address=local), timeout=60) as client:
        return client.post(base + "/v1/clips", files={"file": ("c.mp4", data, "video/mp4")}, headers=AUTH | headers,
                           params={"background": "true"} if background else None)


def spool_files(app) -> list:
    return app.state.services.clips.spool.files()


def open_upload(base: str, declared: int, background=False, local="127.0.0.1", body=b"") -> socket.socket:
    """A raw POST whose headers promise `declared` bytes, then `body` and nothing more (yet)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(local, 0))
    head = (f"POST /v1/clips{'?background=true' if background else ''} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer s3cret\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    sock.sendall(head + b'--zz\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n\r\n' + body)
    return sock


def answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and the whole answer, read until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return (int(data.split()[1]) if data.startswith(b"HTTP/") else 0), data


def test_clips_over_the_budget_are_413_from_their_header_and_a_lying_one_while_decoding(server, clips):
    base, app = server
    bomb = post(base, clips["bomb"], background=True)
    assert bomb.status_code == 413 and "max_clip_pixels" in bomb.json()["detail"]
    huge = post(base, clips["huge"])
    assert huge.status_code == 413 and "1280x720 frame is over max_frame_side 1024" in huge.json()["detail"]
    lie = post(base, clips["lie"])
    assert lie.status_code == 413 and "the header said 64x48" in lie.json()["detail"]
    assert spool_files(app) == []
    metrics = httpx.get(base + "/metrics", headers=AUTH).text
    assert 'emotion_uploads_total{outcome="over_budget"} 2.0' in metrics


def test_background_jobs_are_bounded_per_client_refused_before_the_body_and_cancelled(server, clips):
    base, app = server
    running = post(base, clips["long"], background=True)
    assert running.status_code == 202
    running_url = base + running.headers["location"]
    wait_for(lambda: httpx.get(running_url, headers=AUTH).json()["status"] == "running")
    # The same client's second background job: 429 before a byte of its body was sent.
    sock = open_upload(base, 3_000_000, background=True)
    status, data = answer(sock)
    assert status == 429 and b"max_background_clips_per_client" in data and b"retry-after" in data.lower()
    queued = post(base, clips["blank"], background=True, local="127.0.0.2")  # another client: queued
    assert queued.status_code == 202 and httpx.get(base + queued.headers["location"],
                                                   headers=AUTH).json()["status"] == "queued"
    sock = open_upload(base, 3_000_000, local="127.0.0.3")  # the queue is full now: refused before the body
    status, data = answer(sock)
    assert status == 429 and b"already waiting" in data and len(spool_files(app)) == 2  # the two jobs' only
    assert httpx.delete(running_url).status_code == 401  # token-guarded like the rest
    cancelled = httpx.delete(base + queued.headers["location"], headers=AUTH).json()
    assert cancelled["status"] == "cancelled" and "DELETE" in cancelled["error"]
    started = time.monotonic()
    stopped = httpx.delete(running_url, headers=AUTH, timeout=10).json()
    assert stopped["status"] == "cancelled" and time.monotonic() - started < 2.0
    assert spool_files(app) == []
    wait_for(lambda: app.state.services.clips.busy == 0, timeout=1.0, interval=0.02)  # its CPU is free


def test_uploads_at_once_are_bounded_and_slow_or_silent_bodies_are_cut_with_their_files(server, clips):
    base, app = server
    silent = open_upload(base, 3_000_000, body=b"x" * 100)
    trickling = open_upload(base, 3_000_000, body=b"x" * 100)
    wait_for(lambda: len(spool_files(app)) == 2, timeout=5, interval=0.01)

    def trickle():  # a byte every 50 ms: 20 bytes a second, under the 4000 floor
        try:
            while True:
                trickling.send(b"x")
                time.sleep(0.05)
        except OSError:
            pass

    threading.Thread(target=trickle, daemon=True).start()
    third = post(base, clips["blank"])
    assert third.status_code == 429 and "max_uploads_in_progress" in third.json()["detail"]
    for sock in (silent, trickling):
        status, data = answer(sock)
        assert status == 408 and b"upload_min_bytes_per_s" in data
    wait_for(lambda: spool_files(app) == [], timeout=5)
    assert post(base, clips["blank"]).status_code == 200  # and the next upload is served
    metrics = httpx.get(base + "/metrics", headers=AUTH).text
    assert 'emotion_uploads_total{outcome="too_slow"} 2.0' in metrics


def test_a_client_still_sending_the_body_of_a_refused_upload_reads_the_refusal_not_a_reset(server, budget_settings):
    """An upload refused from its header (413 over max_upload_mb) is answered before its body is read; the server
    then reads on and drops what the client still sends, so the client, sending to the end, gets the 413."""
    base, _ = server
    declared = int(budget_settings.max_upload_mb * 1024 * 1024) + 512 * 1024
    sock = open_upload(base, declared)
    try:
        sock.sendall(b"x" * (declared - 200))  # the whole body, as a client that does not read while it sends
        status, data = answer(sock)
    finally:
        sock.close()
    assert status == 413 and b"over the limit" in data


def test_connections_are_bounded_in_all_and_per_address_and_health_still_answers(server, budget_settings):
    base, _ = server
    host, port = base.removeprefix("http://").split(":")

    def connect(address: str) -> socket.socket:
        return socket.create_connection((host, int(port)), timeout=5, source_address=(address, 0))

    def still_open(sock) -> bool:
        """Neither closed by the server nor answered (a refusal is a 503 and a close)."""
        sock.setblocking(False)
        try:
            sock.recv(100, socket.MSG_PEEK)  # an answer, or the end of the stream, is there
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False

    def refused(sock) -> bool:
        """Answered 503 at once, before it sent anything."""
        sock.setblocking(False)
        try:
            return sock.recv(100, socket.MSG_PEEK).startswith(b"HTTP/1.1 503")
        except OSError:
            return False

    one_host = [connect("127.0.0.2") for _ in range(20)]  # max_connections_per_client = 6
    wait_for(lambda: sum(map(refused, one_host)) == 20 - 6, timeout=5)
    many_hosts = [connect(f"127.0.1.{i + 1}") for i in range(40)]
    assert httpx.get(base + "/healthz", headers=AUTH, timeout=5).status_code == 200
    wait_for(lambda: sum(map(still_open, one_host + many_hosts)) <= budget_settings.max_connections, timeout=5)
    wait_for(lambda: not any(map(still_open, one_host + many_hosts)), timeout=budget_settings.header_timeout_s + 5)
    for sock in one_host + many_hosts:
        sock.close()


def test_a_websocket_client_that_only_listens_outlives_the_header_timeout(server, budget_settings):
    """The header timeout closes connections that never send a whole request head; a websocket is past that (its
    handshake was the request), so a client reading /v1/stream and sending nothing keeps its stream."""
    from websockets.sync.client import connect

    base, _ = server
    with connect(base.replace("http://", "ws://") + "/v1/stream", additional_headers=AUTH, open_timeout=5) as ws:
        time.sleep(budget_settings.header_timeout_s * 2.5)
        assert ws.ping().wait(timeout=5)  # the server still answers on it


def test_job_ids_say_whether_this_run_issued_them(server, clips, budget_settings, tmp_path):
    base, app = server
    ids = []
    for _ in range(3):  # clip_jobs_kept = 2: the first one's result is dropped
        response = post(base, clips["blank"], background=True)
        assert response.status_code == 202
        ids.append(response.json()["id"])
        wait_for(lambda: httpx.get(base + response.headers["location"], headers=AUTH).json()["status"] == "done")
    dropped = httpx.get(f"{base}/v1/clips/{ids[0]}", headers=AUTH)
    assert dropped.status_code == 410 and "kept for the last 2 jobs" in dropped.json()["detail"]
    from service.clip_jobs import ClipJobs

    earlier_run = ClipJobs(budget_settings.model_copy(update={"spool_dir": tmp_path}), engine=None)
    try:
        old_id = earlier_run._new_id()  # an id as the service issued it before a restart
    finally:
        earlier_run.shutdown()
    for job_id in (old_id, "nope"):
        unknown = httpx.get(f"{base}/v1/clips/{job_id}", headers=AUTH)
        assert unknown.status_code == 404 and "unknown to this run" in unknown.json()["detail"]


# ---- a full disk ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_spool(tmp_path_factory):
    """A real 1 MiB filesystem for the spool (tmpfs: needs the right to mount, as root in a container)."""
    folder = tmp_path_factory.mktemp("tiny-spool")
    if os.system(f"mount -t tmpfs -o size=1m tmpfs {folder} 2>/dev/null") != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    yield folder
    os.system(f"umount -l {folder}")


def test_a_full_disk_is_507_in_one_sentence_and_leaves_no_file(tiny_spool):
    settings = Settings(_env_file=None, max_upload_mb=2.0, spool_dir=tiny_spool)
    app = create_app(settings, live=False)
    with running_server(app) as base:
        ready = httpx.get(base + "/readyz")  # 1 MiB free, a maximal upload is 2
        assert ready.status_code == 503 and ready.json()["spool"]["ok"] is False
        full = post(base, os.urandom(1_500_000))  # fails on a write
        run_dir = app.state.services.clips.spool.run_dir
        filler = run_dir / "filler"
        with pytest.raises(OSError):
            with open(filler, "wb") as out:
                out.write(b"\0" * 2_000_000)
        last_flush = post(base, os.urandom(3000))  # fits Python's write buffer: fails on the last flush
        filler.unlink()
        for response in (full, last_flush):
            detail = response.json()["detail"]
            assert response.status_code == 507 and detail == "the server has no room left to store the upload; " \
                "retry later"
        assert app.state.services.clips.spool.files() == []
        metrics = httpx.get(base + "/metrics").text
        assert 'emotion_uploads_total{outcome="disk_full"} 2.0' in metrics
