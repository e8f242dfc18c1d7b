"""What the service sees now: sources, their health, and the people in view with their current labels."""

from fastapi import APIRouter, HTTPException

from service.api.deps import EngineDep, LiveDep
from service.inference.base import engine_status
from service.state import RuntimeStatus

router = APIRouter(prefix="/v1/state", tags=["state"])


@router.get("", response_model=RuntimeStatus, responses={404: {"description": "no such source"}})
def get_state(engine: EngineDep, live: LiveDep, source: str | None = None) -> RuntimeStatus:
    if live is None:
        return RuntimeStatus(t=None, model=engine.spec.name, engine=engine_status(engine))
    snapshot = live.snapshot()
    snapshot.engine = engine_status(engine)
    if source is not None:
        if source not in snapshot.sources:
            raise HTTPException(404, f"no source {source!r}; sources: {', '.join(snapshot.sources) or 'none'}")
        snapshot.sources = {source: snapshot.sources[source]}
    return snapshot
