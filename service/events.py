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


UncertainReason = Literal["too_small", "cut_off", "turned_away", "blurred", "low_confidence"]


class HeadPose(BaseModel):
    """The head's rotation against the line from the camera to the face (0, 0, 0: looking straight into the camera,
    wherever in the image the face is), degrees, from the 68 landmarks (service/people/pose.py)."""

    model_config = ConfigDict(frozen=True)
    yaw: float = Field(description="positive: turned to the person's left (the nose towards the image's right)")
    pitch: float = Field(description="positive: looking up")
    roll: float = Field(description="positive: tilted to the person's left shoulder (clockwise in the image)")


class FaceQuality(BaseModel):
    """How well the face can be read (service/people/quality.py); the thresholds are settings (quality_*)."""

    model_config = ConfigDict(frozen=True)
    face_px: float = Field(description="the face box's longer side in source pixels")
    sharpness: float | None = Field(None, description="variance of the Laplacian of the face crop at 64x64 grey "
                                    "(larger: sharper); null where no landmarks were read yet")
    yaw: float | None = Field(None, description="head_pose.yaw (null: no pose)")
    pitch: float | None = Field(None, description="head_pose.pitch (null: no pose)")


class FaceReading(BaseModel):
    """Who a tracked face is and how well it can be read at one frame: what the face worker knows of it
    (service/people/reader.py), carried by its windows into the events and by the live state into /v1/state."""

    model_config = ConfigDict(frozen=True)
    person_id: int
    seen_before: bool = False
    absent_s: float | None = None  # how long the person had been gone when this track began (seen_before only)
    quality: FaceQuality
    head_pose: HeadPose | None = None
    looking: bool | None = None
    uncertain_reason: UncertainReason | None = None  # of the face alone (low_confidence comes with the label)
    # Where the face is, for ROS's TF frame face_<id> (not in events): metres in the camera's optical frame, and the
    # face frame's orientation there (x out of the face, y to the person's left, z up), a quaternion x, y, z, w.
    position_m: tuple[float, float, float] | None = None
    orientation_xyzw: tuple[float, float, float, float] | None = None


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
    person_id: int | None = Field(
        None, description="who the face is: the same for one person across tracks (leaving and coming back within "
                          "person_memory_s), never shared by two people; equal to track_id with person_recognition "
                          "off; absent only in events from before it was added")
    quality: FaceQuality | None = Field(None, description="how well the face could be read at the window's end")
    uncertain_reason: UncertainReason | None = Field(
        None, description="null: the label is to be trusted; otherwise why not: too_small (face_px under "
                          "quality_min_face_px), cut_off (the face box reaches out of the frame), turned_away (yaw or "
                          "pitch past quality_max_yaw / quality_max_pitch, or no pose could be read), blurred "
                          "(sharpness under quality_min_sharpness), low_confidence (confidence under "
                          "uncertain_confidence). Prompts then state no emotion for this face")
    head_pose: HeadPose | None = Field(None, description="yaw, pitch, roll in degrees (null: not read)")
    looking: bool | None = Field(None, description="the head is turned to the camera within looking_max_yaw and "
                                 "looking_max_pitch (null: no pose)")
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
    person_id: int | None = Field(None, description="who the face is (as in emotion events)")
    seen_before: bool | None = Field(None, description="track_new: the person was seen before (within "
                                     "person_memory_s) and keeps their person_id")
    absent_s: float | None = Field(None, description="track_new of a person seen before: seconds since they were "
                                   "last seen")


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
