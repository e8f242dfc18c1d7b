"""Liveness (the process answers) and readiness (model loaded, live sources delivering)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "model not loaded or a live source not delivering"}})
def readyz(services: ServicesDep) -> JSONResponse:
    sources = services.runtime.sources_alive if services.runtime else {}
    ready = services.engine is not None and all(sources.values())
    body = {"ready": ready, "model": services.engine.spec.name if services.engine else None, "sources": sources}
    return JSONResponse(body, status_code=200 if ready else 503)
