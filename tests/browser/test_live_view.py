"""The live view in a real browser: headless Chromium (Debian's `chromium` package, driven by playwright's Python
package; playwright's own browser download is never used) loads the page from a real running service that watches
the bundled sample clip, with a token set. Checks the rendered page (track ids, labels, a frame image, events, the
prompt, a clip upload's timeline chart), that /docs and /redoc render offline, and that no request leaves the
service. Screenshots go to .cache/browser/ (docs/images/live-view.png, in the README and docs/API.md, is a copy of
live-view.png)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from service.api import create_app
from service.config import SAMPLE_CLIP, Settings
from tests.browser.chromium import SCREENSHOTS, requires_chromium
from tests.server import get_json, running_server

TOKEN = "view-s3cret"
# The one thing any page asks of the internet: ReDoc's footer logo, built into its script, which hides the image when
# it cannot be loaded (the page is complete without it).
REDOC_FOOTER_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def service():
    settings = Settings(_env_file=None, token=TOKEN, heartbeat_s=1.0)
    with running_server(create_app(settings, sources=[f"sample={SAMPLE_CLIP}"])) as base:
        yield base


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.requests = requests
    yield page
    context.close()
    outside = [url for url in requests if not url.startswith((service, service.replace("http", "ws"), "blob:"))
               and url != REDOC_FOOTER_LOGO]
    assert outside == [], "the page asked for something outside the service"


def test_live_view_shows_tracks_labels_frames_events_and_prompt(page, service, astronaut_clip):
    labels = get_json(service, "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})["models"][0]["labels"]
    page.goto(f"{service}/?token={TOKEN}")
    source = page.locator('section.source[data-source="sample"]')
    # A track with a label, and at least three points in its chart (emotion events from the stream).
    page.wait_for_function("""() => [...document.querySelectorAll('section.source .track')]
        .some(t => Number(t.dataset.points) >= 3)""", timeout=90_000)
    track = source.locator(".track[data-points]").filter(has_not_text="…").first
    assert track.locator(".track-id").inner_text().startswith("#")
    assert track.locator(".label").inner_text() in labels
    assert 0 < float(track.locator(".confidence").inner_text()) <= 1
    page.wait_for_function("() => document.querySelector('section.source img.frame').naturalWidth > 0",
                           timeout=30_000)
    frame_size = page.evaluate("() => { const i = document.querySelector('section.source img.frame');"
                               " return [i.naturalWidth, i.naturalHeight]; }")
    assert frame_size == [640, 480]
    assert source.locator(".events li.emotion").count() >= 1
    assert any(label in source.locator(".prompt").inner_text() for label in labels)
    assert source.locator(".messages li").first.inner_text().startswith("system:")
    expect(source.locator(".source-status")).to_have_text("open")  # a looped file reopens at its end: wait
    assert "fps" in source.locator(".source-figures").inner_text()
    assert page.locator("#legend li").all_inner_texts() == labels
    assert page.locator("#connection").inner_text() == "live"

    # The upload form shows the returned timeline as a chart per track.
    page.locator("#clip-form input[type=file]").set_input_files(str(astronaut_clip))
    page.locator("#clip-form button").click()
    page.wait_for_selector("#clip-result .clip-track canvas", timeout=120_000)
    assert page.locator("#clip-status").inner_text() == "done"
    assert page.locator("#clip-result .clip-track h4").first.inner_text().split()[1] in labels
    page.locator("#error").wait_for(state="hidden")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "live-view.png", full_page=True)
    assert (SCREENSHOTS / "live-view.png").stat().st_size > 10_000


@pytest.mark.parametrize("path, rendered", [
    ("/docs", ".swagger-ui .opblock-summary-path"),  # one line per operation, drawn by Swagger UI's script
    ("/redoc", "[data-section-id] h2"),  # ReDoc's operation headings
])
def test_api_docs_render_offline(page, service, path, rendered):
    page.goto(f"{service}{path}?token={TOKEN}")
    page.wait_for_selector(rendered, timeout=60_000)
    text = page.locator("body").inner_text()
    assert "emotion-perception" in text and "/v1/clips" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{path.strip('/')}.png")


def test_live_view_shows_events_lost_on_the_way(page, service):
    """The page counts seq jumps (and heartbeats ahead of what arrived) and shows them beside the connection."""
    page.goto(f"{service}/?token={TOKEN}")
    expect(page.locator("#connection")).to_have_text("live", timeout=60_000)
    assert page.locator("#gaps").is_hidden()  # nothing lost while the page keeps up
    page.evaluate("""() => {
        onEvent({type: "track_new", source: "elsewhere", seq: 1, track_id: 1, t: 1, box: [0, 0, 1, 1]});
        onEvent({type: "track_lost", source: "elsewhere", seq: 5, track_id: 1, t: 2, box: [0, 0, 1, 1]});
    }""")
    expect(page.locator("#gaps")).to_be_visible()
    assert int(page.locator("#gaps").inner_text().split()[0]) >= 3


def test_a_persons_card_and_history_follow_them_across_tracks(page, service):
    """Cards are per person: a second track of the same person_id adds to the first one's chart (issue 32)."""
    page.goto(f"{service}/?token={TOKEN}")
    page.wait_for_selector('section.source[data-source="sample"]', timeout=60_000)
    page.evaluate("""() => {
        const t = view.clock + 0.5, probs = {happy: 0.9};
        const emotion = (track, dt, extra = {}) => onEvent({type: "emotion", source: "sample", track_id: track,
            person_id: 4242, t_start: t + dt - 1, t_end: t + dt, label: "happy", confidence: 0.9, probs,
            prompt: "...", messages: [], ...extra});
        emotion(9001, 0);
        onEvent({type: "track_lost", source: "sample", track_id: 9001, person_id: 4242, t: t + 0.1, box: [0, 0, 1, 1]});
        emotion(9002, 0.3, {uncertain_reason: "turned_away", looking: false});
    }""")
    card = page.locator('section.source[data-source="sample"] .track[data-person-id="4242"]')
    expect(card).to_have_count(1)
    assert card.get_attribute("data-points") == "2" and card.get_attribute("data-track-id") == "9002"
    assert card.locator(".track-id").inner_text() == "#4242 (track 9002)"
    assert "uncertain: turned away" in card.locator(".face-notes").inner_text()
