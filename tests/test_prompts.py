"""The prompt formatter: scene sentences for nobody, one, two and many faces, and the chat messages around them."""

import numpy as np
import pytest

from service.events import ChatMessage, EmotionEvent
from service.emotions import emotion_event
from service.prompts import FaceState, PromptTemplates, chat_messages, describe_scene, emotion_prompt, positions
from service.windows import Window

WIDTH = 1280
TEMPLATES = PromptTemplates()


def face(track_id, centre_x, label="happy", confidence=0.8, t_end=2.0):
    return FaceState(track_id, label, confidence, (centre_x - 50.0, 100.0, 100.0, 100.0), t_end - 2.0, t_end)


def test_nobody_in_view():
    assert describe_scene([], WIDTH, TEMPLATES) == "Nobody is in front of you right now."


def test_one_face_is_the_single_face_sentence():
    assert describe_scene([face(1, 640, "happy", 0.81)], WIDTH, TEMPLATES) == (
        "The person in front of you has looked happy for the last 2 seconds (81% confidence).")
    assert describe_scene([face(1, 100, "fear", 0.3)], WIDTH, TEMPLATES) == emotion_prompt("fear", 0.3, 2.0)


def test_two_faces_are_described_left_to_right():
    faces = [face(7, 1100, "sad"), face(3, 150, "happy")]  # given right one first
    assert describe_scene(faces, WIDTH, TEMPLATES) == (
        "Two people are in front of you: the one on the left looks happy and the one on the right looks sad.")


def test_two_faces_on_the_same_side_still_get_a_left_and_a_right():
    faces = [face(1, 100, "happy"), face(2, 300, "surprise")]  # both in the left third
    assert describe_scene(faces, WIDTH, TEMPLATES) == (
        "Two people are in front of you: the one on the left looks happy and the one on the right looks surprised.")


def test_a_face_in_the_middle_third_is_in_the_middle():
    faces = [face(1, 640, "neutral"), face(2, 1200, "angry")]
    assert describe_scene(faces, WIDTH, TEMPLATES) == (
        "Two people are in front of you: the one in the middle looks neutral and the one on the right looks angry.")


def test_three_faces_with_an_unsure_one():
    faces = [face(1, 200, "happy"), face(2, 640, "sad", confidence=0.35), face(3, 1000, "disgust")]
    assert describe_scene(faces, WIDTH, TEMPLATES) == (
        "Three people are in front of you: the one on the left looks happy, the one in the middle may look sad and "
        "the one on the right looks disgusted.")


def test_crowded_positions_count_from_the_nearer_end():
    assert positions([10, 20, 30, 40], WIDTH, TEMPLATES) == [
        "on the left", "second from the left", "second from the right", "on the right"]
    assert positions([10, 20, 30, 40, 50], WIDTH, TEMPLATES) == [
        "on the left", "second from the left", "in the middle", "second from the right", "on the right"]
    assert positions([10, 20, 30], WIDTH, TEMPLATES) == ["on the left", "in the middle", "on the right"]
    assert positions(list(range(13)), WIDTH, TEMPLATES)[5:8] == ["6th from the left", "in the middle",
                                                                  "6th from the right"]


def test_unknown_frame_width_falls_back_to_the_order():
    assert positions([100, 200], 0, TEMPLATES) == ["on the left", "on the right"]
    assert positions([100, 200, 300], 0, TEMPLATES) == ["on the left", "in the middle", "on the right"]


def test_number_words_up_to_five_then_digits():
    five = describe_scene([face(i, 100 + 200 * i) for i in range(5)], WIDTH, TEMPLATES)
    six = describe_scene([face(i, 100 + 200 * i) for i in range(6)], WIDTH, TEMPLATES)
    assert five.startswith("Five people are in front of you: the one on the left looks happy, ")
    assert six.startswith("6 people are in front of you: ") and six.count("looks happy") == 6
    assert "third from the left" in six and "third from the right" in six


def test_templates_are_configurable_like_settings():
    # As a Settings field they arrive from env / .env JSON, with string keys.
    templates = PromptTemplates.model_validate({
        "group": "I see {count}: {people}.", "person": "{position} someone {label}", "number_words": {"2": "two"},
        "left": "left", "right": "right", "last_separator": " & ", "unsure_below": 0.9,
        "person_unsure": "{position} maybe {label} ({confidence:.0%})"})
    faces = [face(1, 100, "happy", 0.95), face(2, 1200, "sad", 0.6)]
    assert describe_scene(faces, WIDTH, templates) == "I see two: left someone happy & right maybe sad (60%)."


@pytest.mark.parametrize("field, template", [("person", "the one {where} looks {adjective}"),
                                             ("single", "{confidence:.0%"), ("system", "{0}")])
def test_a_broken_template_is_refused_when_configured(field, template):
    with pytest.raises(ValueError, match=f"prompt template '{field}' does not format"):
        PromptTemplates(**{field: template})


def test_chat_messages_put_the_scene_in_the_system_turn():
    scene = describe_scene([face(1, 200, "happy"), face(2, 1000, "sad")], WIDTH, TEMPLATES)
    messages = chat_messages(scene, TEMPLATES)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert scene in messages[0]["content"] and "robot" in messages[0]["content"]
    assert messages[1]["content"] == TEMPLATES.default_user
    assert chat_messages(scene, TEMPLATES, "Hi, how are you?")[1] == {"role": "user", "content": "Hi, how are you?"}


def test_emotion_event_carries_chat_messages():
    window = Window(3, np.zeros((16, 4, 4, 1), np.uint8), None, 12.4, 14.5, (10.0, 20.0, 30.0, 30.0))
    event = emotion_event(window, np.array([0.2, 0.8]), ["sad", "happy"], "camera0", "m")
    assert [m.role for m in event.messages] == ["system", "user"]
    assert event.prompt in event.messages[0].content and "happy" in event.prompt
    custom = emotion_event(window, np.array([0.2, 0.8]), ["sad", "happy"], "camera0", "m",
                           PromptTemplates(single="Looks {adjective}.", system="Context: {scene}"))
    assert custom.prompt == "Looks happy." and custom.messages[0] == ChatMessage(role="system",
                                                                                  content="Context: Looks happy.")


def test_events_need_their_messages():
    with pytest.raises(ValueError, match="messages"):
        EmotionEvent(source="s", track_id=1, t_start=0, t_end=2, label="sad", confidence=0.5, probs={"sad": 0.5},
                     box=(0, 0, 1, 1), model="m", prompt="p", messages=[])
