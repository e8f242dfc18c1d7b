"""Liveness (the process answers) and readiness (model loaded, live sources delivering, room in the upload spool for
one maximal upload). Both run on the event loop itself, not in the thread pool other requests may fill, so they
answer while uploads and slow clients are being handled."""

import shutil

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import ClipJobsDep, EngineDep, LiveDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


def spool_room(clips, max_upload_mb: float) -> dict:
    """Free space where uploads are written, against the largest upload the service accepts."""
    try:
        free = shutil.disk_usage(clips.spool.run_dir).free
    except OSError:  # the run folder is gone (shutdown)
        free = 0
    needed = int(max_upload_mb * 1024 * 1024)
    return {"free_mb": round(free / 2**20, 1), "needed_mb": round(needed / 2**20, 1), "ok": free >= needed}


@router.get("/readyz", responses={503: {"description": "model not loaded, a live source not delivering, or less "
                                        "room in the upload spool than one maximal upload (max_upload_mb)"}})
async def readyz(engine: EngineDep, live: LiveDep, clips: ClipJobsDep, settings: SettingsDep) -> JSONResponse:
    sources = live.sources_alive if live else {}
    spool = spool_room(clips, settings.max_upload_mb)
    ready = engine is not None and all(sources.values()) and spool["ok"]
    body = {"ready": ready, "model": engine.spec.name if engine else None, "sources": sources, "spool": spool}
    return JSONResponse(body, status_code=200 if ready else 503)
