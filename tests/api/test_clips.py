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


def test_server_keeps_serving_and_keeps_no_uploads(clip_server, astronaut_clip):
    import glob
    import tempfile

    for content in (b"", os.urandom(2000), os.urandom(1_200_000)):
        post(clip_server, content)
    assert httpx.get(clip_server + "/healthz", headers=AUTH).status_code == 200
    assert post(clip_server, astronaut_clip.read_bytes()).status_code == 200
    assert glob.glob(os.path.join(tempfile.gettempdir(), "clip-*.upload")) == []


def test_token_is_required(clip_server):
    for path in ("/healthz", "/readyz", "/v1/state", "/v1/models", "/metrics"):
        assert httpx.get(clip_server + path).status_code == 401
        assert httpx.get(clip_server + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(clip_server + "/v1/clips", files={"file": ("a.mp4", b"x")}).status_code == 401
