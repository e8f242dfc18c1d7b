"""Liveness (the process answers) and readiness (model loaded, live sources delivering)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import EngineDep, LiveDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "model not loaded or a live source not delivering"}})
def readyz(engine: EngineDep, live: LiveDep) -> JSONResponse:
    sources = live.sources_alive if live else {}
    ready = engine is not None and all(sources.values())
    body = {"ready": ready, "model": engine.spec.name if engine else None, "sources": sources}
    return JSONResponse(body, status_code=200 if ready else 503)
