"""The model the service runs."""

from fastapi import APIRouter

from service.api.deps import EngineDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
def list_models(engine: EngineDep) -> dict:
    return {"active": engine.spec.name, "providers": engine.providers,
            "models": [engine.spec.model_dump(exclude_none=True) | {"directory": str(engine.bundle.directory)}]}
