"""Settings of the ROS 2 side (`ros` in service/config.py, EMOTION_ROS__* variables). Pure pydantic: reading them
imports no DDS code. The DDS domain itself is configured as for any ROS 2 node: ROS_DOMAIN_ID, CYCLONEDDS_URI."""

from __future__ import annotations

from pydantic import BaseModel, Field

# Our labels (DFEW, FERV39k, MAFW, the embedded model) -> hri_msgs 2.0.0 Expression constants. MAFW's compound
# labels go to the closest constant hri_msgs has; a label not here is published as it is.
HRI_EXPRESSIONS: dict[str, str] = {
    "happy": "happy", "sad": "sad", "angry": "angry", "neutral": "neutral", "surprise": "surprised",
    "disgust": "disgusted", "fear": "scared",
    "contempt": "disgusted", "anxiety": "scared", "helplessness": "despaired", "disappointment": "disappointed",
}


class RosSettings(BaseModel):
    enabled: bool = Field(False, description="publish faces, expressions and prompts on ROS 2 topics (serve --ros)")
    expressions: dict[str, str] = Field(default_factory=lambda: dict(HRI_EXPRESSIONS),
                                        description="model label -> hri_msgs Expression constant (others as they are)")
    frame_id: str | None = Field(None, description="header frame_id of our messages; default: the image's own for "
                                 "ROS image sources, the source's name for others")
    prompt_topic: str = Field("/emotion_perception/prompt", description="std_msgs/String: the LLM prompt")
    messages_topic: str = Field("/emotion_perception/messages",
                                description="std_msgs/String: the chat messages, as JSON")
    tracked_period_s: float = Field(1.0, gt=0, description="/humans/faces/tracked is republished at least this "
                                    "often (and at once on every change)")
    poll_s: float = Field(0.1, gt=0, description="how often faces in view are looked at for roi and tracked "
                          "(a little faster than the default 8 sampled frames a second)")
    lost_face_keep_s: float = Field(10.0, ge=0, description="a lost face's writers stay this long, for its last "
                                    "window's expression, before its topics go away")
