"""What route handlers need, as typed dependencies (`SettingsDep`, `EngineDep`, `ClipJobsDep`, `MetricsDep`, `BusDep`,
`LiveDep`), and the bearer-token check. Only this module knows where the app keeps them (app.state.services).

They are `async def` because they only look things up: FastAPI runs a plain `def` dependency in its thread pool,
one hop per dependency and request, and under a flood of requests that pool's queue delayed even /healthz."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, WebSocket, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from service.api.prometheus import ServiceMetrics
from service.clip_jobs import ClipJobs
from service.config import Settings
from service.inference.base import Engine
from service.live.bus import EventBus
from service.live.runtime import LiveRuntime

if TYPE_CHECKING:  # imported only when enabled (httpx)
    from service.forwarder import LLMForwarder


@dataclass
class Services:
    settings: Settings
    engine: Engine
    clips: ClipJobs
    metrics: ServiceMetrics
    bus: EventBus  # the live runtime's, or a quiet one when serving clips only
    runtime: LiveRuntime | None = None  # None when serving without live sources
    forwarder: LLMForwarder | None = None


async def get_services(connection: HTTPConnection) -> Services:
    """The app's services, for an HTTP request or a websocket alike."""
    return connection.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_engine(services: ServicesDep) -> Engine:
    return services.engine


async def get_clip_jobs(services: ServicesDep) -> ClipJobs:
    return services.clips


async def get_metrics(services: ServicesDep) -> ServiceMetrics:
    return services.metrics


async def get_bus(services: ServicesDep) -> EventBus:
    return services.bus


async def get_live(services: ServicesDep) -> LiveRuntime | None:
    return services.runtime


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ClipJobsDep = Annotated[ClipJobs, Depends(get_clip_jobs)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
BusDep = Annotated[EventBus, Depends(get_bus)]
LiveDep = Annotated[LiveRuntime | None, Depends(get_live)]  # None when serving clips only


def token_matches(settings: Settings, presented: bytes | None) -> bool:
    """True when no token is configured, or the presented one is the configured one's UTF-8 bytes. Compared as bytes
    in constant time (secrets.compare_digest refuses str with non-ASCII characters), so any token, however long and
    whatever its characters, is simply right or wrong."""
    if settings.token is None:
        return True
    return presented is not None and secrets.compare_digest(presented,
                                                            settings.token.get_secret_value().encode("utf-8"))


def header_bytes(value: str) -> bytes:
    """A header value as its client sent it: Starlette decodes headers as Latin-1, which maps every byte to one
    character and back."""
    return value.encode("latin-1")


def bearer(header: str | None) -> bytes | None:
    if header and header.lower().startswith("bearer "):
        return header_bytes(header[7:].strip())
    return None


# Declares the bearer scheme in the OpenAPI document (Swagger UI's Authorize button); the check is ours.
bearer_scheme = HTTPBearer(auto_error=False, description="the service's token (--token, EMOTION_TOKEN)")


def _refuse() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


async def require_token(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None) -> None:
    if not token_matches(settings, header_bytes(credentials.credentials) if credentials else None):
        raise _refuse()


def _header_or_query_token_ok(connection: HTTPConnection, settings: Settings) -> bool:
    presented = bearer(connection.headers.get("authorization"))
    if not presented and (query := connection.query_params.get("token")) is not None:
        presented = query.encode("utf-8")  # percent-escapes are decoded as UTF-8
    return token_matches(settings, presented)


async def require_token_header_or_query(connection: HTTPConnection, settings: SettingsDep) -> None:
    """For pages a browser navigates to (/, /docs, /redoc) and what they load by URL (/openapi.json): a link cannot
    carry a header, so `?token=` is accepted as well."""
    if not _header_or_query_token_ok(connection, settings):
        raise _refuse()


def websocket_token_ok(websocket: WebSocket, settings: Settings) -> bool:
    """Browsers cannot set headers on a websocket, so `?token=` is accepted as well."""
    return _header_or_query_token_ok(websocket, settings)
