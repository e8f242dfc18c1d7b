"""Contract 2, the emotion event: what the service tells its clients, one JSON object per event."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Box = tuple[float, float, float, float]  # x, y, w, h in source pixels


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)
    source: str = Field(description="which camera, stream or clip the event is about")
    seq: int | None = Field(
        None, ge=1, description="the event's number in its source's stream (heartbeats: in the service's), one more "
                                "than the previous; a jump means events were lost on the way (service/live/bus.py). "
                                "Set by the live event bus; null in clip reports")


class ChatMessage(BaseModel):
    """One turn in OpenAI / Qwen chat format."""

    model_config = ConfigDict(frozen=True)
    role: Literal["system", "user", "assistant"]
    content: str


class EmotionEvent(_Event):
    type: Literal["emotion"] = "emotion"
    track_id: int
    t_start: float = Field(description="seconds since the source started, first frame of the window")
    t_end: float = Field(description="seconds since the source started, last frame of the window")
    label: str = Field(description="the emotion, from smoothed_probs (smoothing: none, ema or hysteresis)")
    confidence: float = Field(ge=0, le=1, description="smoothed_probs[label]")
    probs: dict[str, float] = Field(description="the same as smoothed_probs (kept for clients of the first version)")
    raw_probs: dict[str, float] | None = Field(
        None, description="this window's own model output, before any smoothing (set by the service; absent only "
                          "in events from before it was added)")
    smoothed_probs: dict[str, float] | None = Field(
        None, description="the track's probabilities smoothed over its windows so far, per the `smoothing` setting; "
                          "equal to raw_probs with smoothing=none and for a track's first window")
    box: Box
    model: str
    engine: str | None = Field(
        None, description="where the window was classified: 'local' (this service's own engine) or the URL of the "
                          "remote model (triton://HOST:PORT/MODEL) that classified it; absent only in events from "
                          "before it was added")
    valence: float | None = Field(
        None, ge=-1, le=1, description="-1 unpleasant .. 1 pleasant: the model's own for this window, or from the "
                          "smoothed probabilities (see va_source)")
    arousal: float | None = Field(None, ge=-1, le=1, description="-1 calm .. 1 excited (see va_source)")
    va_source: Literal["model", "categories"] | None = Field(
        None, description="model: the model's own valence/arousal output; categories: the probability-weighted mean "
                          "of each label's published coordinates (the valence_arousal setting); null: none known")
    prompt: str = Field(description="a sentence for the LLM")
    prompt_about: Literal["face", "scene"] | None = Field(
        None, description="what the prompt describes: 'face', this event's face alone (clip analysis), or 'scene', "
                          "everyone in view of the source when the window was classified (live); absent only in "
                          "events from before it was added")
    messages: list[ChatMessage] = Field(
        min_length=1, description="the prompt in OpenAI/Qwen chat format: a system turn with the emotion context, "
                                  "then a user turn")


class TrackEvent(_Event):
    type: Literal["track_new", "track_lost"]
    track_id: int
    t: float
    box: Box


class HeartbeatEvent(_Event):
    type: Literal["heartbeat"] = "heartbeat"
    t: float
    last_seq: dict[str, int] | None = Field(
        None, description="the seq of the last event published so far for each source: a client that has seen less "
                          "of a source it follows missed the rest")


Event = Annotated[Union[EmotionEvent, TrackEvent, HeartbeatEvent], Field(discriminator="type")]


def event_time(event: EmotionEvent | TrackEvent | HeartbeatEvent) -> float:
    return event.t_end if isinstance(event, EmotionEvent) else event.t


def event_order(event: EmotionEvent | TrackEvent | HeartbeatEvent) -> tuple[float, int]:
    """A sort key: time order, and at the same time a track's emotion events before its track_lost (its last window
    ends on the frame where it was last seen), so no emotion follows the end of its track."""
    return event_time(event), int(isinstance(event, TrackEvent) and event.type == "track_lost")
