"""The live view: its latest-frame store (memory only, encoded on request, rate and size bounded), the frame
endpoint on a real running service, the page, the token, and the setting that turns it all off."""

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.live.latest_frames import FaceLabel, LatestFrames, ViewFace, encode_view
from tests.server import get_json, wait_for


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(value: int = 0, size=(1080, 1920)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_nothing_is_encoded_while_nobody_asks():
    store = LatestFrames(max_fps=5, max_side=640, jpeg_quality=80, clock=FakeClock())
    for i in range(100):
        store.put("cam", i / 8, frame(i), [ViewFace(1, (10.0, 10.0, 50.0, 50.0))])
    assert store.encoded == 0
    assert store.jpeg("other", dict) is None and store.jpeg("cam", dict) is not None and store.encoded == 1


def test_encodings_are_rate_bounded_and_shared_by_viewers():
    clock = FakeClock()
    store = LatestFrames(max_fps=5, max_side=640, jpeg_quality=80, clock=clock)
    store.put("cam", 1.0, frame(10), [])
    first, t1 = store.jpeg("cam", dict)
    store.put("cam", 1.125, frame(200), [])  # a newer frame, but within 1/5 s of the last encoding
    for _ in range(10):  # ten viewers
        assert store.jpeg("cam", dict) == (first, t1)
    assert store.encoded == 1 and t1 == 1.0
    clock.now += 0.2
    second, t2 = store.jpeg("cam", dict)
    assert store.encoded == 2 and t2 == 1.125 and second != first
    clock.now += 10  # the same frame again: no new encoding however long ago the last one was
    assert store.jpeg("cam", dict) == (second, t2) and store.encoded == 2


def test_frames_are_shrunk_to_max_side_and_boxes_drawn():
    store = LatestFrames(max_fps=5, max_side=320, jpeg_quality=90, clock=FakeClock())
    store.put("cam", 0.0, frame(0), [ViewFace(3, (400.0, 200.0, 400.0, 400.0))])
    jpeg, _ = store.jpeg("cam", lambda: {3: FaceLabel("happy", 0.81)})
    image = decode(jpeg)
    assert image.shape[:2] == (180, 320)  # 1920x1080 -> longest side 320
    # The box's left edge (x = 400 / 6) is drawn in the track's colour on the black frame.
    assert image[100, 66:69].max() > 100 and image[100, 150].max() < 30


def test_caption_with_and_without_label():
    blank = encode_view(frame(0, (240, 320)), [ViewFace(1, (100.0, 100.0, 60.0, 60.0))], {}, 640, 90)
    labelled = encode_view(frame(0, (240, 320)), [ViewFace(1, (100.0, 100.0, 60.0, 60.0))],
                           {1: FaceLabel("surprise", 0.5)}, 640, 90)
    # The longer caption covers more of the frame above the box.
    assert (decode(labelled)[70:100] > 100).sum() > (decode(blank)[70:100] > 100).sum()


@pytest.mark.parametrize("shape", [(240, 320), (240, 320, 1), (240, 320, 4)])
def test_grey_and_alpha_frames_are_drawn_in_colour(shape):
    jpeg = encode_view(np.zeros(shape, np.uint8), [ViewFace(1, (100.0, 100.0, 60.0, 60.0))], {}, 640, 90)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.shape == (240, 320, 3)
    b, g, r = image[80:98, 100:125].reshape(-1, 3).mean(0)  # the caption's background: track 1's orange
    assert r > 150 and r - b > 80


def test_frame_endpoint_on_a_live_source(live_server):
    def frame_ready():
        response = httpx.get(live_server + "/v1/view/frames/face", timeout=30)
        return response if response.status_code == 200 else None

    response = wait_for(frame_ready, timeout=60)
    assert response.headers["content-type"] == "image/jpeg" and response.headers["cache-control"] == "no-store"
    assert float(response.headers["x-frame-time"]) >= 0 and float(response.headers["x-view-max-fps"]) == 5
    image = decode(response.content)
    assert image is not None and max(image.shape[:2]) <= 640


def test_frame_endpoint_unknown_source(live_server):
    response = httpx.get(live_server + "/v1/view/frames/nosuch", timeout=30)
    assert response.status_code == 404 and "face" in response.json()["detail"]


def test_page_and_its_assets_are_served(live_server):
    page = httpx.get(live_server + "/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/view/view.js", "/static/view/view.css"):
        assert asset in page.text
        response = httpx.get(live_server + asset, timeout=30)
        assert response.status_code == 200 and len(response.content) > 1000
    # Nothing of the page comes from elsewhere (no CDN): only relative URLs.
    script = httpx.get(live_server + "/static/view/view.js", timeout=30).text
    assert "http://" not in page.text + script and "https://" not in page.text + script
    # The labels are read from the model, not written into the page.
    labels = get_json(live_server, "/v1/models")["models"][0]["labels"]
    assert not any(f'"{label}"' in script for label in labels)


def test_page_and_frames_need_the_token(clip_server):
    assert httpx.get(clip_server + "/", timeout=30).status_code == 401
    assert httpx.get(clip_server + "/?token=wrong", timeout=30).status_code == 401
    assert httpx.get(clip_server + "/?token=s3cret", timeout=30).status_code == 200
    assert httpx.get(clip_server + "/", headers={"Authorization": "Bearer s3cret"}, timeout=30).status_code == 200
    assert httpx.get(clip_server + "/v1/view/frames/face", timeout=30).status_code == 401
    # The frame endpoint takes the header (the page sends it); with it, a clips-only service has no live source.
    assert httpx.get(clip_server + "/v1/view/frames/face?token=s3cret", timeout=30).status_code == 401
    assert httpx.get(clip_server + "/v1/view/frames/face", headers={"Authorization": "Bearer s3cret"},
                     timeout=30).status_code == 404


@pytest.fixture(scope="module")
def view_off_app(astronaut_clip):
    return create_app(Settings(_env_file=None, view=False), sources=[f"face={astronaut_clip}"])


def test_view_off_means_no_page_and_no_frame_endpoint(view_off_app):
    client = TestClient(view_off_app, base_url="http://localhost")  # no lifespan: the routes alone are asked
    assert client.get("/").status_code == 404
    assert client.get("/v1/view/frames/face").status_code == 404
    assert client.get("/static/view/view.js").status_code == 404
    paths = client.app.openapi()["paths"]
    assert not any(path.startswith("/v1/view") for path in paths)


def test_view_off_means_no_frames_kept(astronaut_clip):
    from service.inference import create_engine
    from service.live.runtime import LiveRuntime

    settings = Settings(_env_file=None, view=False)
    assert LiveRuntime(settings, create_engine(settings), [str(astronaut_clip)]).latest_frames is None
