"""POST /v1/clips and GET /v1/clips/{id}: timelines for good clips, 4xx for bad ones, and the server keeps serving."""

import os

import httpx
import pytest

from tests.server import wait_for

AUTH = {"Authorization": "Bearer s3cret"}


def post(base, content: bytes | None, filename="clip.mp4", field="file", **kwargs):
    files = {field: (filename, content, "video/mp4")} if content is not None else None
    return httpx.post(base + "/v1/clips", files=files, headers=AUTH, timeout=120, **kwargs)


def test_upload_returns_the_timeline(clip_server, astronaut_clip):
    response = post(clip_server, astronaut_clip.read_bytes(), filename="astronaut.mp4")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["source"] == "astronaut.mp4" and report["frames_decoded"] == 75
    assert [t["dominant_label"] for t in report["tracks"]] == ["happy"]
    emotions = [e for e in report["events"] if e["type"] == "emotion"]
    assert emotions and all(e["label"] == "happy" and e["prompt"] for e in emotions)


def test_background_upload_answers_202_and_is_polled(clip_server, astronaut_clip):
    response = post(clip_server, astronaut_clip.read_bytes(), params={"background": "true"})
    assert response.status_code == 202
    location = response.headers["location"]
    assert location.startswith("/v1/clips/")
    job = wait_for(lambda: (j := httpx.get(clip_server + location, headers=AUTH).json())["status"] in
                   ("done", "failed") and j, timeout=120)
    assert job["status"] == "done" and job["report"]["tracks"][0]["dominant_label"] == "happy"


@pytest.mark.parametrize("content, status, words", [
    (b"", 400, "empty"),
    (b"hello, this is text and not a video\n" * 10, 422, "not a readable video"),
    (os.urandom(50_000), 422, "not a readable video"),
])
def test_bad_uploads_are_4xx_with_a_clear_message(clip_server, content, status, words):
    response = post(clip_server, content)
    assert response.status_code == status and words in response.json()["detail"]
    assert "/tmp" not in response.json()["detail"]  # the server's temporary path is not leaked


def test_over_the_limit_is_413(clip_server):
    response = post(clip_server, os.urandom(1_200_000))
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_missing_field_and_not_multipart(clip_server):
    assert post(clip_server, b"abc", field="video").status_code == 400
    response = httpx.post(clip_server + "/v1/clips", content=b"raw bytes", headers=AUTH)
    assert response.status_code == 400 and "multipart" in response.json()["detail"]


def test_clip_without_faces_is_200_with_no_tracks(clip_server, blank_clip):
    response = post(clip_server, blank_clip.read_bytes())
    assert response.status_code == 200 and response.json()["tracks"] == []


def test_unknown_job_is_404(clip_server):
    assert httpx.get(clip_server + "/v1/clips/nope", headers=AUTH).status_code == 404


def test_server_keeps_serving_and_keeps_no_uploads(clip_server, clip_spool, astronaut_clip):
    import socket

    def uploads():  # where the spool puts them: its run folder (service/spool.py)
        return sorted(clip_spool.glob("run-*/clip-*.upload"))

    for content in (b"", os.urandom(2000), os.urandom(1_200_000)):
        post(clip_server, content)
    assert httpx.get(clip_server + "/healthz", headers=AUTH).status_code == 200
    assert post(clip_server, astronaut_clip.read_bytes()).status_code == 200
    assert uploads() == []
    # The glob sees an upload while one is there: one half sent, its client then gone.
    host, port = clip_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/clips HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\n"
                     b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 100000\r\n\r\n--zz\r\n"
                     b'Content-Disposition: form-data; name="file"; filename="half.mp4"\r\n\r\n' + b"x" * 50_000)
        assert len(wait_for(uploads, timeout=10, interval=0.02)) == 1
    wait_for(lambda: uploads() == [], timeout=10)


def test_token_is_required(clip_server):
    for path in ("/healthz", "/readyz", "/v1/state", "/v1/models", "/metrics"):
        assert httpx.get(clip_server + path).status_code == 401
        assert httpx.get(clip_server + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(clip_server + "/v1/clips", files={"file": ("a.mp4", b"x")}).status_code == 401


def test_warnings_do_not_show_the_servers_temporary_path(clip_server, astronaut_clip):
    # The clip's second half overwritten with noise: decoding stops part-way, with a warning that says so.
    import random

    data = bytearray(astronaut_clip.read_bytes())
    noise = random.Random(1)
    for i in range(len(data) // 2, len(data) - 2000):  # the index (moov) at the end stays readable
        data[i] = noise.randrange(256)
    response = post(clip_server, bytes(data), filename="broken.mp4")
    assert response.status_code == 200, response.text
    warnings = response.json()["warnings"]
    assert warnings and "decoding stopped" in warnings[0] and warnings[0].startswith("broken.mp4")
    assert not any("/tmp" in w or ".upload" in w for w in warnings)


def test_the_limit_counts_the_whole_body_not_only_the_clip(clip_server, astronaut_clip):
    """A chunked body (no Content-Length to refuse early) with a valid clip beside a large extra field."""
    boundary = "xYzBoundary"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n"
               "Content-Type: video/mp4\r\n\r\n").encode() + astronaut_clip.read_bytes() + b"\r\n"
        yield f"--{boundary}\r\nContent-Disposition: form-data; name=\"padding\"\r\n\r\n".encode()
        for _ in range(20):
            yield b"x" * 100_000  # 2 MB under a 1 MB limit
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(clip_server + "/v1/clips", content=body(), timeout=60,
                          headers=AUTH | {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_uploads_and_requests_are_measured(clip_server, astronaut_clip):
    assert post(clip_server, astronaut_clip.read_bytes()).status_code == 200
    text = httpx.get(clip_server + "/metrics", headers=AUTH).text
    for name in ('emotion_uploads_total{outcome="done"}', "emotion_upload_bytes_count",
                 "emotion_upload_bytes_sum", "emotion_clip_queue_wait_seconds_count",
                 "emotion_clip_analysis_seconds_count", "emotion_clip_queue_depth", "emotion_clip_workers_busy",
                 'emotion_http_requests_total{method="POST",route="/v1/clips",status="200"}',
                 'emotion_http_request_seconds_count{method="POST",route="/v1/clips"}'):
        assert name in text, name
    done = next(line for line in text.splitlines() if line.startswith('emotion_uploads_total{outcome="done"}'))
    assert float(done.split()[-1]) >= 1
