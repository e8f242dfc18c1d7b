"""The people the service remembers (by face descriptors, in memory only: README, "Privacy"): forget them now."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.api.deps import LiveDep

router = APIRouter(prefix="/v1/people", tags=["people"])


class Forgotten(BaseModel):
    forgotten: int = Field(description="people whose descriptors were dropped (0 with person_recognition off or "
                           "without live sources)")


@router.delete("", response_model=Forgotten)
def forget_people(live: LiveDep) -> Forgotten:
    """Forget everyone: every descriptor is dropped at once. Faces in view keep their person_id until their track
    ends; whoever comes (back) later is a new person."""
    return Forgotten(forgotten=live.forget_people() if live is not None else 0)
