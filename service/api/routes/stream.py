"""The live event stream: every event (emotion, track_new, track_lost, heartbeat) as JSON text messages."""

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from service.api.deps import websocket_token_ok

router = APIRouter(tags=["stream"])


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket, source: str | None = None) -> None:
    """`?source=NAME` keeps one source's events (heartbeats always come); `?token=` where headers cannot be set.
    A client that reads too slowly loses its oldest events (counted in /metrics); it never slows the others."""
    if not websocket_token_ok(websocket):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="missing or wrong token")
        return
    services = websocket.app.state.services
    runtime = services.runtime
    if runtime is not None and source is not None and source not in runtime.runners:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=f"no source {source!r}")
        return
    await websocket.accept()
    bus = services.bus
    subscription = bus.subscribe(source)

    async def send_events() -> None:
        while True:
            event = await subscription.queue.get()
            await websocket.send_text(event.model_dump_json())

    async def wait_for_close() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return

    sender, closer = asyncio.create_task(send_events()), asyncio.create_task(wait_for_close())
    try:
        await asyncio.wait({sender, closer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        bus.unsubscribe(subscription)
        for task in (sender, closer):
            task.cancel()
        await asyncio.gather(sender, closer, return_exceptions=True)
