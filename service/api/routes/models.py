"""The model the service runs, and where (GET /v1/state's `engine` has the details)."""

from fastapi import APIRouter

from service.api.deps import EngineDep
from service.inference.base import engine_status

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
def list_models(engine: EngineDep) -> dict:
    """The bundle in use: its bundle.json, where its weights came from and their licence ('unknown' when the bundle
    does not say), its temperature and whether valence/arousal come from the model."""
    spec = engine.spec
    trained = spec.trained_on
    return {"active": spec.name, "providers": engine.providers, "engine": engine_status(engine).where,
            "models": [spec.model_dump(exclude_none=True) | {
                "directory": str(engine.bundle.directory), "source": trained.source or "unknown",
                "license": trained.licence, "research_only": bool(trained.research_only),
                "temperature": spec.temperature, "va_source": "model" if spec.valence_arousal else "categories"}]}
