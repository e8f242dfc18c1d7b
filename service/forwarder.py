"""Optional forwarder: when a person's emotion changes, post the event's chat `messages` to an OpenAI-compatible
/v1/chat/completions endpoint (vLLM, Ollama or llama.cpp serving Qwen), as DuSE's robot feeds perceived emotions to
its dialogue model. It can never stall the pipeline: `handle()` only puts work on a small bounded queue (a full
queue drops and counts), one background task does the HTTP, and every LLM-server failure is logged and counted.

Rate limiting coalesces: a label is compared with the label last *forwarded* for that track, not the last one seen.
A change that arrives inside `min_interval_s` is skipped and counted, but it stays a change, so the track's next
event after the interval carries it (with the scene as it is then). A change that reverts inside the interval
(happy -> sad -> happy) is never sent, since the LLM already has the current label. No timers are needed; emotion
events come every hop (~1 s) per track, and a person who leaves before the interval ends is not reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field, SecretStr

from service.events import EmotionEvent, HeartbeatEvent, TrackEvent

log = logging.getLogger(__name__)


class ForwarderSettings(BaseModel):
    enabled: bool = Field(False, description="post emotion changes to an OpenAI-compatible chat endpoint")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="the server's /v1 root (vLLM, Ollama, llama.cpp)")
    model: str = Field("Qwen/Qwen2.5-7B-Instruct", description="model name as the server knows it")
    api_key: SecretStr | None = Field(None, description="sent as a Bearer token when set")
    min_interval_s: float = Field(10.0, ge=0, description="at most one request per source in this many seconds")
    timeout_s: float = Field(30.0, gt=0, description="one request, connect to last byte of the reply")
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    only_on_change: bool = Field(True, description="only when a track's label changes (a new track's first label "
                                                   "counts); False: every emotion event, still rate limited")
    queue_size: int = Field(4, ge=1, description="requests waiting for the HTTP task; more are dropped and counted")


@dataclass
class ForwarderCounters:
    sent: int = 0  # requests the server answered with a reply
    skipped_rate_limited: int = 0  # events with a change to send, inside min_interval_s of the source's last request
    skipped_unchanged: int = 0  # events whose label the LLM already has
    dropped_queue_full: int = 0  # requests the HTTP task had no room for
    errors: int = 0  # requests that failed: connection, timeout, HTTP status, a reply that is not chat JSON

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def should_forward(previous_label: str | None, new_label: str, last_sent_at: float | None, now: float,
                   settings: ForwarderSettings) -> bool:
    """Whether an emotion event goes to the LLM (pure). previous_label: the label last forwarded for this track (None
    for a track never forwarded); last_sent_at: when the source's last request was queued (None: never)."""
    if settings.only_on_change and previous_label == new_label:
        return False
    return last_sent_at is None or now - last_sent_at >= settings.min_interval_s


@dataclass(frozen=True)
class _Request:
    source: str
    track_id: int
    label: str
    body: dict


class LLMForwarder:
    """Posts emotion changes to an LLM server from a background task; see the module docstring for the policy.

    Feed it every event of every source (emotion events are acted on, track_lost forgets the track, others are
    ignored): `await handle(event)` on the event loop, or `post_from_thread(loop, event)` from another thread; then
    `await aclose()` once at shutdown. `clock` (monotonic seconds) drives the rate limit; `client` lets a caller
    share or stub the HTTP client (then it is not closed here)."""

    def __init__(self, settings: ForwarderSettings, client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings, self.clock = settings, clock
        self.counters = ForwarderCounters()
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self._client, self._owns_client = client, client is None
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=settings.queue_size)
        self._worker: asyncio.Task | None = None
        self._closed = False
        self._forwarded_labels: dict[tuple[str, int], str] = {}  # (source, track_id) -> label last forwarded
        self._last_sent_at: dict[str, float] = {}  # source -> clock() of its last queued request

    async def handle(self, event: EmotionEvent | TrackEvent | HeartbeatEvent) -> None:
        """Never waits on the network: at most one non-blocking put on the queue."""
        self.handle_nowait(event)

    def post_from_thread(self, loop: asyncio.AbstractEventLoop, event: EmotionEvent | TrackEvent | HeartbeatEvent
                         ) -> None:
        """For a thread that is not the loop's (an event-bus sink): hands the event to the loop; never waits, never
        raises."""
        try:
            loop.call_soon_threadsafe(self.handle_nowait, event)
        except RuntimeError:  # the loop closed during shutdown
            pass

    def handle_nowait(self, event: EmotionEvent | TrackEvent | HeartbeatEvent) -> None:
        """handle() for code already on the event loop's thread, without an await."""
        if not self.settings.enabled or self._closed:
            return
        if isinstance(event, TrackEvent) and event.type == "track_lost":
            self._forwarded_labels.pop((event.source, event.track_id), None)
        if not isinstance(event, EmotionEvent):
            return
        key = (event.source, event.track_id)
        previous = self._forwarded_labels.get(key)
        now = self.clock()
        if not should_forward(previous, event.label, self._last_sent_at.get(event.source), now, self.settings):
            if self.settings.only_on_change and previous == event.label:
                self.counters.skipped_unchanged += 1
            else:
                self.counters.skipped_rate_limited += 1
            return
        self._start_worker()
        body = {"model": self.settings.model, "messages": [m.model_dump() for m in event.messages],
                "max_tokens": self.settings.max_tokens, "temperature": self.settings.temperature}
        try:
            self._queue.put_nowait(_Request(event.source, event.track_id, event.label, body))
        except asyncio.QueueFull:
            # Not marked as forwarded: the track's next event tries again.
            self.counters.dropped_queue_full += 1
            return
        self._forwarded_labels[key] = event.label
        self._last_sent_at[event.source] = now

    @property
    def running(self) -> bool:
        """Whether the background HTTP task is up (it starts with the first request)."""
        return self._worker is not None and not self._worker.done()

    async def drain(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for every queued request to be answered or to fail; True if they all were."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    async def aclose(self, drain_timeout_s: float = 0.0) -> None:
        """Stop: let queued requests finish for up to drain_timeout_s, then cancel the rest. Safe to call twice."""
        self._closed = True
        if self._worker is not None:
            if drain_timeout_s > 0:
                await self.drain(drain_timeout_s)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _start_worker(self) -> None:
        if self._worker is None or self._worker.done():  # done: it died somehow; a new one takes over the queue
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="llm-forwarder")

    async def _run(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)
        headers = {}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        while True:
            request = await self._queue.get()
            try:
                reply = await self._post(request.body, headers)
            except Exception as error:  # whatever the server does, the task keeps serving (Frigate #7178)
                self.counters.errors += 1
                log.warning("LLM forwarder: %s failed for %s track %d (%s): %s", self.url, request.source,
                            request.track_id, request.label, _describe(error))
            else:
                self.counters.sent += 1
                log.debug("LLM forwarder: %s track %d %s -> %r", request.source, request.track_id, request.label,
                          reply)
            finally:
                self._queue.task_done()

    async def _post(self, body: dict, headers: dict[str, str]) -> str:
        response = await self._client.post(self.url, json=body, headers=headers, timeout=self.settings.timeout_s)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise ValueError(f"reply content is {type(content).__name__}, not text")
        return content


def _describe(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, (KeyError, IndexError, TypeError)):
        return f"reply is not a chat completion ({type(error).__name__}: {error})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
