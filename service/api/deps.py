"""What route handlers need, as typed dependencies: the app's services and the bearer-token check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, status

from service.api.clip_jobs import ClipJobs
from service.api.prometheus import ServiceMetrics
from service.config import Settings


@dataclass
class Services:
    settings: Settings
    engine: object  # OnnxEngine
    clips: ClipJobs
    metrics: ServiceMetrics
    bus: object  # EventBus: the live runtime's, or a quiet one when serving clips only
    runtime: object | None = None  # LiveRuntime, None when serving without live sources
    forwarder: object | None = None


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def token_matches(settings: Settings, presented: str | None) -> bool:
    """True when no token is configured, or the presented one matches (constant-time compare)."""
    if settings.token is None:
        return True
    return presented is not None and secrets.compare_digest(presented, settings.token.get_secret_value())


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def require_token(request: Request) -> None:
    if not token_matches(request.app.state.services.settings, bearer(request.headers.get("authorization"))):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def websocket_token_ok(websocket: WebSocket) -> bool:
    """Browsers cannot set headers on a websocket, so `?token=` is accepted as well."""
    presented = bearer(websocket.headers.get("authorization")) or websocket.query_params.get("token")
    return token_matches(websocket.app.state.services.settings, presented)
