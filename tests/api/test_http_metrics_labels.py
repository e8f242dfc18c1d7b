"""HTTP metrics keep a fixed set of label values (issue 34): made-up methods and paths, counted before any token check,
must not add series to /metrics."""

from __future__ import annotations

import random
import string

import httpx
import pytest

from service.api import create_app
from service.config import Settings
from tests.server import running_server

AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def server():
    settings = Settings(_env_file=None, token="s3cret")
    with running_server(create_app(settings, live=False)) as base:
        yield base


PATHS = ("/v1/state", "/v1/clips", "/v1/clips/{0}", "/metrics", "/{0}/{1}", "/v1/clips/{0}/extra")


def http_series(base: str) -> list[str]:
    text = httpx.get(base + "/metrics", headers=AUTH, timeout=30).text
    return [line for line in text.splitlines() if line.startswith("emotion_http_")]


def made_up(rng: random.Random, n: int) -> str:
    return "X" + "".join(rng.choice(string.ascii_uppercase) for _ in range(n - 1))  # no real method starts with X


def hostile_requests(base: str, rng: random.Random, count: int) -> list[str]:
    """`count` requests with made-up methods (up to 2000 characters) on real routes and made-up paths, with and
    without the token, each followed by a GET of a made-up path; returns the methods sent. The first
    2 * len(PATHS) requests give every label value that any later one can give."""
    sent = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(count):
            method = made_up(rng, rng.choice((4, 12, 200, 2000)))
            path = PATHS[i % len(PATHS)].format(made_up(rng, 12), i)
            headers = AUTH if (i // len(PATHS)) % 2 else {}
            client.request(method, path, headers=headers)
            client.get(f"/{made_up(rng, 20)}", headers=headers)
            sent.append(method)
    return sent


def test_made_up_methods_and_paths_add_no_series(server):
    rng = random.Random(34)
    hostile_requests(server, rng, 2 * len(PATHS))  # every label value once ("other" method and route, 404, 405)
    http_series(server)  # and the scrape's own
    before = http_series(server)
    sent = hostile_requests(server, rng, 300)
    after = http_series(server)
    assert len(after) == len(before), sorted(set(after) - set(before))[:5]
    exposition = "\n".join(after)
    assert not any(method in exposition for method in sent)
    assert 'method="other",route="other"' in exposition and 'route="/v1/state"' in exposition


def test_real_methods_and_route_templates_are_kept(server):
    httpx.get(server + "/v1/clips/some-job-id", headers=AUTH)
    httpx.delete(server + "/v1/clips/another-id", headers=AUTH)
    exposition = "\n".join(http_series(server))
    assert 'method="GET",route="/v1/clips/{job_id}",status="404"' in exposition
    assert 'method="DELETE",route="/v1/clips/{job_id}"' in exposition
    assert "some-job-id" not in exposition
