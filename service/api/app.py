"""The FastAPI application: model and detector checked at creation (so a bad configuration fails before the server
starts, with one clear line), live runtime and background tasks started in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from service.clip_jobs import ClipJobs
from service.api.browser_guard import BrowserGuard
from service.api.deps import Services, require_token
from service.api.prometheus import HttpMetricsMiddleware, ServiceMetrics
from service.api.routes import clips, docs, health, metrics, models, people, state, stream, view
from service.config import Settings
from service.detect import create_detector
from service.events import HeartbeatEvent
from service.inference import create_engine
from service.inference.base import close_engine, engine_status
from service.ingest.sources import SourceSpec
from service.live.bus import EventBus
from service.live.sinks import QueuedSink
from service.spool import UploadSpool
from service.ros.wiring import open_ros

log = logging.getLogger(__name__)


async def _heartbeats(bus: EventBus, clock: Callable[[], float], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        bus.publish(HeartbeatEvent(source="service", t=round(clock(), 3)))


def create_app(settings: Settings | None = None, live: bool = True, sources: list[str] | None = None,
               opener: Callable[[SourceSpec], object] | None = None) -> FastAPI:
    """live=False serves uploads only (no cameras). `sources` overrides settings.sources; `opener` replaces
    OpenCV's capture (tests)."""
    settings = settings or Settings()
    engine = create_engine(settings)
    create_detector(settings)  # fail now, not in a worker thread, if the configured detector cannot be built
    UploadSpool.check(settings.spool_dir)  # and now if the upload spool cannot be private (its files: lifespan)
    service_metrics = ServiceMetrics()
    service_metrics.watch_engine(functools.partial(engine_status, engine))
    runtime = None
    if live:
        from service.live.runtime import LiveRuntime

        # Built here so that a bad --source fails before the server starts; its threads start in the lifespan.
        extra = {"opener": opener} if opener is not None else {}
        runtime = LiveRuntime(settings, engine, sources, observe_stage=service_metrics.observe_stage,
                              observe_batch=service_metrics.observe_batch,
                              observe_frame_to_event=service_metrics.observe_frame_to_event, **extra)
        service_metrics.watch_runtime(runtime.snapshot)
    ros = open_ros(settings, runtime)  # DDS only when asked for; a domain that cannot start stops us here

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        bus = runtime.bus if runtime else EventBus(settings.subscriber_queue)
        bus.attach_loop(loop)
        forwarder, forwarder_sink = None, None
        if settings.forwarder.enabled:
            from service.forwarder import LLMForwarder

            forwarder = LLMForwarder(settings.forwarder)
            # Off the publishing thread, behind a bounded queue; post_from_thread hands each event to the loop.
            forwarder_sink = QueuedSink("llm_forwarder", functools.partial(forwarder.post_from_thread, loop),
                                        settings.sink_queue)
            forwarder_sink.start()
            bus.add_sink(forwarder_sink)
        queued_sinks = (runtime.sinks if runtime else []) + ([forwarder_sink] if forwarder_sink else [])
        service_metrics.watch_event_outputs(bus, lambda: queued_sinks, forwarder)
        clip_jobs = ClipJobs(settings, engine, service_metrics.uploads)
        service_metrics.watch_clips(clip_jobs)
        app.state.services = Services(settings, engine, clip_jobs, service_metrics, bus, runtime, forwarder)
        if runtime:
            runtime.start()
        if ros:
            ros.start()
        clock = runtime.clock if runtime else loop.time
        heartbeat = asyncio.create_task(_heartbeats(bus, clock, settings.heartbeat_s))
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if ros:
                await asyncio.to_thread(ros.stop)
            if runtime:
                await asyncio.to_thread(runtime.stop)
            await asyncio.to_thread(clip_jobs.shutdown)
            await asyncio.to_thread(close_engine, engine)
            if forwarder_sink:
                await asyncio.to_thread(forwarder_sink.stop)
            if forwarder:
                await forwarder.aclose(drain_timeout_s=1.0)

    # docs_url, redoc_url, openapi_url: served by routes/docs.py instead (offline assets, token).
    app = FastAPI(title="emotion-perception", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  description="Dynamic facial-expression recognition for robots: emotion events with LLM prompts.")
    # Added first, so the metrics (outside it) count the requests it refuses too.
    app.add_middleware(BrowserGuard, allowed_hosts=[settings.host, *settings.allowed_hosts],
                       allowed_origins=settings.allowed_origins, refused=service_metrics.refused)
    app.add_middleware(HttpMetricsMiddleware, metrics=service_metrics)
    app.state.model_spec = engine.spec  # for serve's start-up line (the engine itself reaches routes via Services)
    guarded = [Depends(require_token)]
    for router in (health.router, models.router, state.router, clips.router, metrics.router, people.router):
        app.include_router(router, dependencies=guarded)
    app.include_router(stream.router)  # checks the token itself (websockets may pass it as ?token=)
    app.include_router(docs.router)
    app.mount(docs.ASSETS_URL, docs.assets(), name="docs-assets")
    if settings.view:
        app.include_router(view.router)
        app.mount(view.STATIC_URL, view.static_files(), name="view-static")
    return app
