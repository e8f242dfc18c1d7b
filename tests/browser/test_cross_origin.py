"""Other web pages kept out, in a real browser (issue 34): a service with no token (the default) watching the sample
clip; a page served by a second little HTTP server on another port (another origin) tries to read the stream and to
post a clip with a form, and is refused, while the same script on the service's own page reads the stream and the
live view works (frames, stream, clip upload). A name that Chromium resolves to 127.0.0.1 (--host-resolver-rules:
what DNS rebinding does) gets neither the page nor the camera's frames."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from service.api import create_app
from service.config import SAMPLE_CLIP, Settings
from tests.browser.chromium import REBOUND_NAME, SCREENSHOTS, requires_chromium
from tests.server import running_server

pytestmark = requires_chromium

# Opens the service's websocket from whatever page runs it; resolves with the first message, or how it closed.
READ_STREAM = """(url) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onmessage = (event) => { resolve({opened: true, message: event.data}); socket.close(); };
    socket.onclose = (event) => resolve({opened: false, code: event.code});
})"""


def other_page(service: str) -> bytes:
    """Another site's page: a form that posts a clip to the service."""
    return f"""<!doctype html><title>another site</title>
<form id="upload" method="post" enctype="multipart/form-data" action="{service}/v1/clips">
  <input type="file" name="file"><button type="submit">send</button>
</form>""".encode()


@pytest.fixture(scope="module")
def service():
    settings = Settings(_env_file=None, heartbeat_s=0.5)  # no token: the default
    with running_server(create_app(settings, sources=[f"sample={SAMPLE_CLIP}"])) as base:
        yield base


@pytest.fixture(scope="module")
def other_site(service):
    page = other_page(service)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="other-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def stream_url(service: str) -> str:
    return service.replace("http://", "ws://") + "/v1/stream"


def test_another_sites_page_cannot_read_the_stream_and_the_services_own_page_can(page, service, other_site):
    page.goto(other_site)
    refused = page.evaluate(READ_STREAM, stream_url(service))
    assert refused["opened"] is False and "message" not in refused
    page.goto(service)
    own = page.evaluate(READ_STREAM, stream_url(service))
    assert own["opened"] is True and '"type":"' in own["message"]
    expect(page.locator("#connection")).to_have_text("live", timeout=60_000)  # the live view's own stream


def test_another_sites_form_cannot_post_a_clip_and_the_services_own_page_can(page, service, other_site,
                                                                              astronaut_clip):
    page.goto(other_site)
    page.locator("#upload input[type=file]").set_input_files(str(astronaut_clip))
    with page.expect_navigation() as navigation:
        page.locator("#upload button").click()
    answer = navigation.value
    assert answer.url == f"{service}/v1/clips" and answer.status == 403
    assert "may not send POST requests" in answer.json()["detail"]

    page.goto(service)
    page.locator("#clip-form input[type=file]").set_input_files(str(astronaut_clip))
    page.locator("#clip-form button").click()
    page.wait_for_selector("#clip-result .clip-track canvas", timeout=120_000)
    assert page.locator("#clip-status").inner_text() == "done"


def test_a_rebound_name_gets_neither_the_page_nor_the_frames_nor_the_stream(page, service):
    port = service.rsplit(":", 1)[1]
    page.goto(service)
    page.wait_for_function("() => document.querySelector('section.source img.frame')?.naturalWidth > 0",
                           timeout=60_000)  # the frames are there, for the service's own page
    for path in ("/v1/view/frames/sample", "/v1/state", "/"):
        answer = page.goto(f"http://{REBOUND_NAME}:{port}{path}")
        assert answer.status == 400 and "EMOTION_ALLOWED_HOSTS" in answer.json()["detail"], path
    # The answer's page has the rebound name's origin, as a rebinding page has: its websocket passes the Origin rule
    # (the service's host and port) and the Host rule refuses it.
    assert page.evaluate("() => location.origin") == f"http://{REBOUND_NAME}:{port}"
    assert page.evaluate(READ_STREAM, f"ws://{REBOUND_NAME}:{port}/v1/stream")["opened"] is False
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "rebound-name-refused.png")
