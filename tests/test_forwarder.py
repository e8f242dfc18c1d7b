"""The LLM forwarder against a fake OpenAI-compatible server on loopback: what it posts, when, and how it survives a
server that fails."""

import asyncio
import itertools
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from service.events import EmotionEvent, HeartbeatEvent, TrackEvent
from service.forwarder import ForwarderSettings, LLMForwarder, should_forward
from service.prompts import PromptTemplates, chat_messages, emotion_prompt

DEADLINE_S = 10.0  # generous bound for anything asynchronous; tests finish as soon as the condition holds


class FakeLLM:
    """Records every chat request; the first path segment picks how it answers: ok-*, fail-* (HTTP 500),
    garbage-* (200 with a body that is not JSON), slow-* (answers after 0.5 s)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.app = FastAPI()
        self.app.post("/{tag}/v1/chat/completions")(self.chat)
        self.port = 0

    async def chat(self, tag: str, request: Request):
        body = await request.json()
        self.requests.append({"tag": tag, "body": body, "authorization": request.headers.get("authorization")})
        mode = tag.split("-")[0]
        if mode == "fail":
            return Response("model crashed", status_code=500)
        if mode == "garbage":
            return PlainTextResponse("<html>not an API</html>")
        if mode == "slow":
            await asyncio.sleep(0.5)
        number = sum(r["tag"] == tag for r in self.requests)
        return {"id": f"chatcmpl-{number}", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"reply {number} to {tag}"}}]}

    def received(self, tag: str) -> list[dict]:
        return [r for r in self.requests if r["tag"] == tag]


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch):
    # httpx honours proxy variables; a proxy configured on the test machine must not carry loopback requests.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture(scope="module")
def fake_llm():
    fake = FakeLLM()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    fake.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "fake LLM server did not start"
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(DEADLINE_S)
    sock.close()


_tags = itertools.count()


def url(fake, mode: str) -> tuple[str, str]:
    """A base_url of its own for each test (so requests are told apart) and the tag the server records."""
    tag = f"{mode}-{next(_tags)}"
    return f"http://127.0.0.1:{fake.port}/{tag}/v1", tag


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emotion(label: str, source="camera0", track_id=1, confidence=0.8) -> EmotionEvent:
    prompt = emotion_prompt(label, confidence, 2.0)
    return EmotionEvent(source=source, track_id=track_id, t_start=0.0, t_end=2.0, label=label, confidence=confidence,
                        probs={label: confidence}, box=(10, 10, 50, 50), model="m", prompt=prompt,
                        messages=chat_messages(prompt, PromptTemplates()))


def forwarder(base_url: str, clock=None, **overrides) -> LLMForwarder:
    settings = ForwarderSettings(enabled=True, base_url=base_url, timeout_s=5.0, **overrides)
    return LLMForwarder(settings, clock=clock or FakeClock())


async def wait_for(condition) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("previous, new, last_sent_at, now, only_on_change, expected", [
    (None, "happy", None, 0.0, True, True),  # a new track's first label
    ("happy", "happy", None, 0.0, True, False),  # unchanged
    ("happy", "sad", 100.0, 105.0, True, False),  # changed, inside the interval
    ("happy", "sad", 100.0, 110.0, True, True),  # changed, interval over
    ("happy", "happy", 100.0, 110.0, False, True),  # every event when only_on_change is off ...
    ("happy", "happy", 100.0, 109.9, False, False),  # ... still rate limited
])
def test_should_forward(previous, new, last_sent_at, now, only_on_change, expected):
    settings = ForwarderSettings(enabled=True, min_interval_s=10.0, only_on_change=only_on_change)
    assert should_forward(previous, new, last_sent_at, now, settings) is expected


def test_first_label_is_posted_with_the_emotion_context(fake_llm):
    base_url, tag = url(fake_llm, "ok")

    async def scenario():
        fw = forwarder(base_url, api_key="sk-local", model="qwen2.5:7b", max_tokens=64, temperature=0.3)
        event = emotion("happy")
        await fw.handle(event)
        assert await fw.drain(DEADLINE_S)
        await fw.aclose()
        return fw, event

    fw, event = asyncio.run(scenario())
    [request] = fake_llm.received(tag)
    body = request["body"]
    assert set(body) == {"model", "messages", "max_tokens", "temperature"}
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("qwen2.5:7b", 64, 0.3)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert event.prompt in body["messages"][0]["content"] and "looked happy" in body["messages"][0]["content"]
    assert request["authorization"] == "Bearer sk-local"
    assert fw.counters.as_dict() == {"sent": 1, "skipped_rate_limited": 0, "skipped_unchanged": 0,
                                     "dropped_queue_full": 0, "errors": 0}


def test_unchanged_label_is_not_posted_again(fake_llm):
    base_url, tag = url(fake_llm, "ok")
    clock = FakeClock()

    async def scenario():
        fw = forwarder(base_url, clock)
        await fw.handle(emotion("happy"))
        clock.now += 60  # long past the interval: only the missing change holds it back
        await fw.handle(emotion("happy"))
        await fw.handle(HeartbeatEvent(source="camera0", t=3.0))
        assert await fw.drain(DEADLINE_S)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert len(fake_llm.received(tag)) == 1
    assert (fw.counters.sent, fw.counters.skipped_unchanged) == (1, 1)


def test_change_inside_the_interval_waits_and_is_sent_after_it(fake_llm):
    base_url, tag = url(fake_llm, "ok")
    clock = FakeClock()

    async def scenario():
        fw = forwarder(base_url, clock, min_interval_s=10.0)
        await fw.handle(emotion("happy"))
        clock.now += 3
        await fw.handle(emotion("sad"))  # too soon: skipped, still pending as a change
        clock.now += 3
        await fw.handle(emotion("sad"))
        assert await fw.drain(DEADLINE_S)
        assert len(fake_llm.received(tag)) == 1 and fw.counters.skipped_rate_limited == 2
        clock.now += 4.5  # 10.5 s after the first request
        await fw.handle(emotion("sad"))
        assert await fw.drain(DEADLINE_S)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    requests = fake_llm.received(tag)
    assert len(requests) == 2 and "looked sad" in requests[1]["body"]["messages"][0]["content"]
    assert fw.counters.sent == 2


def test_a_change_that_reverts_inside_the_interval_is_not_sent(fake_llm):
    base_url, tag = url(fake_llm, "ok")
    clock = FakeClock()

    async def scenario():
        fw = forwarder(base_url, clock, min_interval_s=10.0)
        await fw.handle(emotion("happy"))
        clock.now += 2
        await fw.handle(emotion("sad"))
        clock.now += 20
        await fw.handle(emotion("happy"))  # the LLM already has "happy"
        assert await fw.drain(DEADLINE_S)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert len(fake_llm.received(tag)) == 1
    assert (fw.counters.skipped_rate_limited, fw.counters.skipped_unchanged) == (1, 1)


def test_rate_limit_is_per_source_and_new_tracks_count_as_changes(fake_llm):
    base_url, tag = url(fake_llm, "ok")
    clock = FakeClock()

    async def scenario():
        fw = forwarder(base_url, clock, min_interval_s=10.0)
        await fw.handle(emotion("happy", source="camera0", track_id=1))
        await fw.handle(emotion("happy", source="camera1", track_id=1))  # another source: its own interval
        await fw.handle(emotion("sad", source="camera0", track_id=2))  # a new face on camera0: too soon
        assert await fw.drain(DEADLINE_S)
        clock.now += 10
        await fw.handle(emotion("sad", source="camera0", track_id=2))  # its first label, now sent
        assert await fw.drain(DEADLINE_S)
        # A lost track is forgotten: the same id coming back is a new face.
        await fw.handle(TrackEvent(source="camera1", type="track_lost", track_id=1, t=5.0, box=(0, 0, 1, 1)))
        await fw.handle(emotion("happy", source="camera1", track_id=1))
        assert await fw.drain(DEADLINE_S)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert fw.counters.sent == 4 and fw.counters.skipped_rate_limited == 1
    assert len(fake_llm.received(tag)) == 4


@pytest.mark.parametrize("mode", ["fail", "garbage", "slow", "closed-port"])
def test_server_failures_are_counted_never_raised(fake_llm, mode):
    if mode == "closed-port":
        with socket.socket() as probe:  # a port nobody listens on: connection refused
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}/v1"
    else:
        base_url, _ = url(fake_llm, mode)
    clock = FakeClock()

    async def scenario():
        fw = LLMForwarder(ForwarderSettings(enabled=True, base_url=base_url, timeout_s=0.1), clock=clock)
        await fw.handle(emotion("happy"))
        await wait_for(lambda: fw.counters.errors == 1)
        clock.now += 60
        await fw.handle(emotion("sad"))  # the background task survived the first failure
        await wait_for(lambda: fw.counters.errors == 2)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert fw.counters.sent == 0


def test_full_queue_drops_counts_and_tries_again_later(fake_llm):
    base_url, tag = url(fake_llm, "ok")

    async def scenario():
        fw = forwarder(base_url, queue_size=1)
        # No await yields to the loop in between, so the HTTP task has not taken anything off the queue yet.
        for source in ("camera0", "camera1", "camera2"):
            await fw.handle(emotion("happy", source=source))
        assert fw.counters.dropped_queue_full == 2
        assert await fw.drain(DEADLINE_S)
        for source in ("camera1", "camera2"):  # a dropped change was not marked as sent: it goes now
            await fw.handle(emotion("happy", source=source))
            assert await fw.drain(DEADLINE_S)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert fw.counters.sent == 3 and len(fake_llm.received(tag)) == 3


def test_events_from_another_thread(fake_llm):
    base_url, tag = url(fake_llm, "ok")

    async def scenario():
        fw = forwarder(base_url)
        loop = asyncio.get_running_loop()
        publisher = threading.Thread(target=fw.post_from_thread, args=(loop, emotion("surprise")))
        publisher.start()
        await wait_for(lambda: fw.counters.sent == 1)
        publisher.join(DEADLINE_S)
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert fw.counters.errors == 0
    assert "looked surprised" in fake_llm.received(tag)[0]["body"]["messages"][0]["content"]


def test_aclose_stops_cleanly(fake_llm):
    slow_url, slow_tag = url(fake_llm, "slow")
    ok_url, ok_tag = url(fake_llm, "ok")

    async def scenario():
        cancelled = forwarder(slow_url)
        await cancelled.handle(emotion("happy"))
        assert cancelled.running
        await wait_for(lambda: fake_llm.received(slow_tag))  # the request is in flight
        await cancelled.aclose()  # does not wait for the answer
        await cancelled.aclose()  # twice is fine
        worker_gone = not cancelled.running
        await cancelled.handle(emotion("sad"))  # after close: ignored
        drained = forwarder(ok_url)
        await drained.handle(emotion("happy"))
        await drained.aclose(drain_timeout_s=DEADLINE_S)  # lets the queued request finish
        unused = forwarder(ok_url)
        await unused.aclose()  # never started
        return cancelled, drained, worker_gone

    cancelled, drained, worker_gone = asyncio.run(scenario())
    assert worker_gone and cancelled.counters.sent == 0 and cancelled.counters.errors == 0
    assert len(fake_llm.received(slow_tag)) == 1
    assert drained.counters.sent == 1 and len(fake_llm.received(ok_tag)) == 1


def test_disabled_forwarder_does_nothing(fake_llm):
    base_url, tag = url(fake_llm, "ok")

    async def scenario():
        fw = LLMForwarder(ForwarderSettings(base_url=base_url))
        await fw.handle(emotion("happy"))
        await fw.aclose()
        return fw

    fw = asyncio.run(scenario())
    assert fake_llm.received(tag) == [] and fw.counters.as_dict() == dict.fromkeys(fw.counters.as_dict(), 0)
