"""The live event stream: every event (emotion, track_new, track_lost, heartbeat) as JSON text messages."""

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from service.api.deps import BusDep, LiveDep, MetricsDep, SettingsDep, websocket_token_ok

router = APIRouter(tags=["stream"])


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket, settings: SettingsDep, live: LiveDep, bus: BusDep, metrics: MetricsDep,
                 source: str | None = None) -> None:
    """`?source=NAME` keeps one source's events (heartbeats always come); `?token=` where headers cannot be set.
    A client that falls subscriber_queue events behind loses its oldest events; one that answers no ping for
    ws_ping_timeout_s is disconnected (both counted in /metrics). Neither slows the pipeline or the others."""
    if not websocket_token_ok(websocket, settings):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="missing or wrong token")
        return
    if live is not None and source is not None and not live.has_source(source):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=f"no source {source!r}")
        return
    await websocket.accept()
    subscription = bus.subscribe(source)

    async def send_events() -> None:
        while True:
            event = await subscription.queue.get()
            await websocket.send_text(event.model_dump_json())

    async def wait_for_close() -> int:
        """The close code: 1000/1001 when the client closed, else the connection was lost (no pong, broken)."""
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return message.get("code", 1005)
        except WebSocketDisconnect as exc:
            return exc.code

    sender, closer = asyncio.create_task(send_events()), asyncio.create_task(wait_for_close())
    try:
        await asyncio.wait({sender, closer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        bus.unsubscribe(subscription)
        for task in (sender, closer):
            task.cancel()
        await asyncio.gather(sender, closer, return_exceptions=True)
        code = closer.result() if closer.done() and not closer.cancelled() and closer.exception() is None else None
        metrics.websocket_disconnects.labels("closed" if code in (1000, 1001) else "lost").inc()
        metrics.websocket_undelivered.inc(subscription.queue.qsize())
