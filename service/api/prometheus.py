"""Prometheus metrics: latency histograms observed as work happens, and gauges/counters read from the runtime's
snapshot at scrape time (so they can never drift from what the runtime really counts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.clip_jobs import ClipJobs, ClipObserver
from service.live.bus import EventBus
from service.live.sinks import QueuedSink
from service.state import EngineStatus, RuntimeStatus

if TYPE_CHECKING:
    from service.forwarder import LLMForwarder  # imported only when the forwarder is enabled (httpx)

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From a frame's capture to its event: at least the inference time, at most about stall_s.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CLIP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
SIZE_BUCKETS = tuple(float(2 ** n) for n in range(10, 31, 2))  # 1 KiB .. 1 GiB


class RuntimeCollector(Collector):
    def __init__(self, snapshot: Callable[[], RuntimeStatus]):
        self._snapshot = snapshot  # LiveRuntime.snapshot

    def collect(self):
        snap = self._snapshot()
        per_source = {
            "emotion_source_fps": (GaugeMetricFamily, "sampled frames processed per second", "fps_processed"),
            "emotion_source_up": (GaugeMetricFamily, "1 while the source delivers frames", "alive"),
            "emotion_frame_queue_depth": (GaugeMetricFamily, "sampled frames waiting for the face worker",
                                          "queue_depth"),
            "emotion_frames_read": (CounterMetricFamily, "frames read from the source", "frames_read"),
            "emotion_frames_sampled": (CounterMetricFamily, "frames kept at sample_fps", "frames_sampled"),
            "emotion_frames_dropped": (CounterMetricFamily, "sampled frames dropped because the face worker lagged",
                                       "frames_dropped"),
            "emotion_source_reconnects": (CounterMetricFamily, "times the source was reopened", "reconnects"),
            # A flickering label shows as a high rate here; a steady scene as none.
            "emotion_label_changes": (CounterMetricFamily, "times a track's published emotion label changed",
                                      "label_changes"),
        }
        for name, (family, doc, key) in per_source.items():
            metric = family(name, doc, labels=["source"])
            for source, values in snap.sources.items():
                metric.add_metric([source], float(getattr(values, key)))
            yield metric
        waiting = GaugeMetricFamily("emotion_source_waiting", "1 while the source is there but gives no usable frame "
                                    "(a ROS topic without publisher or silent)", labels=["source"])
        skipped = CounterMetricFamily("emotion_frames_skipped", "frames or messages that arrived and could not be "
                                      "used, by reason (malformed, broken, undecodable, unsupported, refused_size)",
                                      labels=["source", "reason"])
        worker_errors = CounterMetricFamily("emotion_face_worker_errors", "frames a source's face worker failed on, "
                                            "by error type", labels=["source", "kind"])
        for source, values in snap.sources.items():
            waiting.add_metric([source], float(values.status == "waiting"))
            for reason, count in values.skipped.items():
                skipped.add_metric([source, reason], count)
            for kind, count in values.worker_errors.items():
                worker_errors.add_metric([source, kind], count)
        yield waiting
        yield skipped
        yield worker_errors
        inference_errors = CounterMetricFamily("emotion_inference_errors", "batches of windows the inference worker "
                                               "failed on, by error type", labels=["kind"])
        for kind, count in snap.inference_errors.items():
            inference_errors.add_metric([kind], count)
        yield inference_errors
        searches = CounterMetricFamily("emotion_detector_searches", "face detector searches by kind: whole (the "
                                       "whole frame), region (around one known face), held (a still face's frame "
                                       "not searched)", labels=["source", "kind"])
        for source, values in snap.sources.items():
            for kind, count in values.detector_searches.items():
                searches.add_metric([source, kind], count)
        yield searches
        tracks = GaugeMetricFamily("emotion_tracks", "faces tracked now", labels=["source"])
        for source, values in snap.sources.items():
            tracks.add_metric([source], len(values.tracks))
        yield tracks
        yield GaugeMetricFamily("emotion_window_queue_depth", "windows waiting for inference",
                                value=snap.windows_queue_depth)
        yield CounterMetricFamily("emotion_windows_dropped", "windows dropped because inference lagged",
                                  value=snap.windows_dropped)
        yield CounterMetricFamily("emotion_windows_classified", "windows classified", value=snap.windows_classified)
        yield CounterMetricFamily("emotion_events_published", "events published", value=snap.events_published)
        yield GaugeMetricFamily("emotion_websocket_clients", "websocket subscribers", value=snap.subscribers)
        yield CounterMetricFamily("emotion_websocket_events_dropped",
                                  "events lost by websocket clients that lagged subscriber_queue events behind "
                                  "(their oldest go first)", value=snap.events_dropped_slow_clients)
        restarts = CounterMetricFamily("emotion_watchdog_restarts", "restarts by the watchdog", labels=["component"])
        for component, count in snap.watchdog_restarts.items():
            restarts.add_metric([component], count)
        yield restarts


class EngineCollector(Collector):
    """Where windows are classified, read at scrape time (service/inference/failover.py); nothing while the engine
    is local only."""

    def __init__(self, status: Callable[[], EngineStatus]):
        self._status = status

    def collect(self):
        status = self._status()
        if status.remote is None:
            return
        up = GaugeMetricFamily("emotion_engine_remote_up", "1 while windows run on the remote server, 0 while they "
                               "run on the local fallback", labels=["remote"])
        up.add_metric([status.remote], float(status.status == "remote"))
        yield up
        windows = CounterMetricFamily("emotion_engine_windows", "windows classified, by engine: local (the "
                                      "fallback), or the remote URL", labels=["engine"])
        windows.add_metric(["local"], status.windows_local)
        windows.add_metric([status.remote], status.windows_remote)
        yield windows
        yield CounterMetricFamily("emotion_engine_switches", "times windows moved between the remote server and the "
                                  "local fallback", value=status.switches)
        exchanged = CounterMetricFamily("emotion_engine_remote_bytes", "tensor bytes exchanged with the remote "
                                        "server", labels=["direction"])
        exchanged.add_metric(["sent"], status.remote_bytes_sent)
        exchanged.add_metric(["received"], status.remote_bytes_received)
        yield exchanged
        yield CounterMetricFamily("emotion_engine_health_checks", "health checks of the remote server while windows "
                                  "ran locally", value=status.health_checks)


class ClipCollector(Collector):
    """The clip queue as it is at scrape time."""

    def __init__(self, clips: ClipJobs):
        self._clips = clips

    def collect(self):
        yield GaugeMetricFamily("emotion_clip_queue_depth", "uploaded clips waiting for a clip worker",
                                value=self._clips.queued)
        yield GaugeMetricFamily("emotion_clip_workers_busy", "clip workers analysing a clip", value=self._clips.busy)


class EventOutputCollector(Collector):
    """Where events go besides the websocket, read at scrape time: each queued sink's drops and errors, the errors
    of sinks called in the publishing thread, and the LLM forwarder's requests by outcome."""

    def __init__(self, bus: EventBus, sinks: Callable[[], list[QueuedSink]], forwarder: LLMForwarder | None):
        self._bus, self._sinks, self._forwarder = bus, sinks, forwarder

    def collect(self):
        dropped = CounterMetricFamily("emotion_sink_events_dropped", "events a sink lost because it lagged "
                                      "sink_queue events behind (the oldest go first)", labels=["sink"])
        errors = CounterMetricFamily("emotion_sink_errors", "events a sink failed on (logged)", labels=["sink"])
        for sink in self._sinks():
            dropped.add_metric([sink.name], sink.dropped)
            errors.add_metric([sink.name], sink.errors)
        errors.add_metric(["bus"], self._bus.sink_errors)  # sinks called in the publishing thread
        yield dropped
        yield errors
        if self._forwarder is not None:
            requests = CounterMetricFamily(
                "emotion_forwarder_requests", "emotion events at the LLM forwarder by outcome: sent (answered), "
                "errors (failed), dropped_queue_full, skipped_rate_limited, skipped_unchanged", labels=["outcome"])
            for outcome, count in self._forwarder.counters.as_dict().items():
                requests.add_metric([outcome], count)
            yield requests


class UploadMetrics(ClipObserver):
    """Uploads by outcome, their sizes, time waiting in the clip queue and time analysing (ClipJobs reports here)."""

    def __init__(self, registry: CollectorRegistry):
        self.uploads = Counter("emotion_uploads", "clip uploads by outcome: done, failed (not a video, corrupt, too "
                               "long, decoded past its budget), cancelled (the client went away while it waited, or "
                               "DELETE), queue_full, client_limit, busy (429), refused (400/413 before analysis), "
                               "over_budget (413 from the header), too_slow (408), disk_full (507), abandoned (the "
                               "client left during the upload), shutting_down (503 during a shutdown)", ["outcome"],
                               registry=registry)
        self.size = Histogram("emotion_upload_bytes", "size of each accepted upload (its clip part)",
                              buckets=SIZE_BUCKETS, registry=registry)
        self.queue_wait = Histogram("emotion_clip_queue_wait_seconds", "time an upload waited for a clip worker",
                                    buckets=CLIP_BUCKETS, registry=registry)
        self.analysis = Histogram("emotion_clip_analysis_seconds", "time a clip worker spent on an upload",
                                  buckets=CLIP_BUCKETS, registry=registry)

    def queued(self, size_bytes: int) -> None:
        self.size.observe(size_bytes)

    def refused(self, reason: str) -> None:
        self.uploads.labels(reason).inc()

    def started(self, waited_s: float) -> None:
        self.queue_wait.observe(waited_s)

    def finished(self, outcome: str, analysis_s: float) -> None:
        self.uploads.labels(outcome).inc()
        if outcome != "cancelled" or analysis_s > 0:  # a job cancelled while queued never ran
            self.analysis.observe(analysis_s)


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()  # our own registry: no global state shared between apps or tests
        self.stage_seconds = Histogram("emotion_stage_seconds", "time per call of each pipeline stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("emotion_inference_batch_size", "windows per inference call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.frame_to_event = Histogram(
            "emotion_frame_to_event_seconds", "from the capture of a window's last frame to the publication of its "
            "emotion event (live sources)", buckets=LATENCY_BUCKETS, registry=self.registry)
        self.uploads = UploadMetrics(self.registry)
        self.http_requests = Counter("emotion_http_requests", "HTTP requests by method, route and status",
                                     ["method", "route", "status"], registry=self.registry)
        self.http_seconds = Histogram("emotion_http_request_seconds", "time to answer an HTTP request",
                                      ["method", "route"], buckets=STAGE_BUCKETS + (30.0, 60.0, 300.0),
                                      registry=self.registry)
        self.http_refused = Counter(
            "emotion_http_refused", "HTTP requests and websockets refused by the browser guard, by rule: host (a Host "
            "name not allowed: a DNS rebinding page, or a name to add to allowed_hosts), origin (a websocket or a "
            "state-changing request from another web page)", ["rule"], registry=self.registry)
        self.websocket_disconnects = Counter(
            "emotion_websocket_disconnects", "websocket clients gone, by reason: closed (by the client), "
            "lost (no answer to a ping within ws_ping_timeout_s, or the connection broke)", ["reason"],
            registry=self.registry)
        self.websocket_undelivered = Counter(
            "emotion_websocket_events_undelivered", "events still queued for a websocket client when it went away",
            registry=self.registry)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def observe_frame_to_event(self, seconds: float) -> None:
        self.frame_to_event.observe(seconds)

    def refused(self, rule: str) -> None:
        self.http_refused.labels(rule).inc()

    def watch_runtime(self, snapshot: Callable[[], RuntimeStatus]) -> None:
        self.registry.register(RuntimeCollector(snapshot))

    def watch_engine(self, status: Callable[[], EngineStatus]) -> None:
        self.registry.register(EngineCollector(status))

    def watch_clips(self, clips: ClipJobs) -> None:
        self.registry.register(ClipCollector(clips))

    def watch_event_outputs(self, bus: EventBus, sinks: Callable[[], list[QueuedSink]],
                            forwarder: LLMForwarder | None) -> None:
        self.registry.register(EventOutputCollector(bus, sinks, forwarder))


# The label values of HTTP metrics: anything else is "other", so that no request can add series (a made-up method or
# path is counted before any token check; each new label value would stay in /metrics for the process's life).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"


def http_labels(scope) -> tuple[str, str]:
    """(method, route) of a request: one of HTTP_METHODS, and the template of the app's route it matched
    (/v1/clips/{job_id}, not one series per id); "other" for the rest, unmatched paths included."""
    method = scope.get("method", "")
    route = getattr(scope.get("route"), "path", None)  # set by the router to one of the app's own routes
    return (method if method in HTTP_METHODS else OTHER), (route or OTHER)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request by method and route template (http_labels), and its status. Plain ASGI,
    so that streaming bodies and disconnect detection pass through untouched."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method, route = http_labels(scope)
            self.metrics.http_requests.labels(method, route, str(status["code"])).inc()
            self.metrics.http_seconds.labels(method, route).observe(time.perf_counter() - started)
