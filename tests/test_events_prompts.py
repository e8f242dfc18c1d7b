import numpy as np
from pydantic import TypeAdapter

from service.events import ChatMessage, EmotionEvent, Event, TrackEvent
from service.emotions import emotion_event
from service.prompts import adjective, emotion_prompt
from service.windows import Window


def test_prompt_wording():
    assert emotion_prompt("happy", 0.81, 1.9) == (
        "The person in front of you has looked happy for the last 2 seconds (81% confidence).")
    assert emotion_prompt("fear", 0.3, 2.0).startswith("The person in front of you may look afraid")
    assert adjective("Surprise") == "surprised" and adjective("contempt") == "contemptuous"
    assert adjective("unknown_label") == "unknown_label"


def test_emotion_event_from_a_window_follows_contract_2():
    window = Window(3, np.zeros((16, 4, 4, 1), np.uint8), None, 12.4, 14.5, (10.0, 20.0, 30.0, 30.0))
    event = emotion_event(window, np.array([0.1, 0.81, 0.09]), ["sad", "happy", "neutral"], "camera0", "m")
    data = event.model_dump()
    assert data["type"] == "emotion" and data["label"] == "happy" and data["confidence"] == 0.81
    assert set(data) >= {"source", "track_id", "t_start", "t_end", "label", "confidence", "probs", "box", "model",
                         "prompt", "messages"}
    assert data["probs"] == {"sad": 0.1, "happy": 0.81, "neutral": 0.09}
    assert "happy" in data["prompt"]


def test_events_round_trip_through_json_by_type():
    adapter = TypeAdapter(list[Event])
    events = [TrackEvent(source="s", type="track_new", track_id=1, t=0.0, box=(0, 0, 1, 1)),
              EmotionEvent(source="s", track_id=1, t_start=0, t_end=2, label="sad", confidence=0.5,
                           probs={"sad": 0.5, "happy": 0.5}, box=(0, 0, 1, 1), model="m", prompt="p",
                           messages=[ChatMessage(role="system", content="p"), ChatMessage(role="user", content="hi")])]
    restored = adapter.validate_json(adapter.dump_json(events))
    assert [type(e) for e in restored] == [TrackEvent, EmotionEvent] and restored == events


def test_a_clip_report_puts_a_tracks_last_emotion_before_its_track_lost():
    """A track's final window ends on the frame where it was last seen, the time of its track_lost: sorted by time
    alone (as before), the track_lost, produced first, came first."""
    from service.events import event_order

    window = Window(1, np.zeros((16, 4, 4, 1), np.uint8), None, 1.0, 3.0, (0.0, 0.0, 1.0, 1.0))
    last = emotion_event(window, np.array([0.2, 0.8]), ["sad", "happy"], "clip", "m")
    lost = TrackEvent(source="clip", type="track_lost", track_id=1, t=3.0, box=(0, 0, 1, 1))
    new = TrackEvent(source="clip", type="track_new", track_id=2, t=3.0, box=(0, 0, 1, 1))
    assert sorted([lost, new, last], key=event_order) == [new, last, lost]
