"""People through the service: the face loop on real footage of people leaving and coming back, events and
prompts that speak of them, clip reports' uncertain spans, and privacy (no descriptor in events, the JSONL log,
/v1/state, /metrics or logs; DELETE /v1/people forgets, behind the token)."""

import json
import logging

import httpx
import numpy as np
import pytest

from service.api import create_app
from service.crops import CropPolicy
from service.detect import create_detector
from service.emotions import emotion_event
from service.footage.people import Person, group_frames
from service.people.wiring import create_face_reader, create_registry
from service.pipeline import FacePipeline
from service.prompts import FaceState, PromptTemplates, describe_scene
from service.report import uncertain_spans
from service.track import create_tracker
from tests.people.conftest import reading, window
from tests.server import running_server, wait_for

TOKEN = "people-token"


def footage():
    """8 fps: the astronaut (2 s), nobody (2 s), Grace Hopper (2 s), nobody (2 s), the astronaut again, mirrored,
    smaller and elsewhere (2 s): (t, frame)."""
    parts = [(Person(0, 110, (320, 220), 0),), (), (Person(1, 110, (300, 210), 0),), (),
             (Person(0, 90, (420, 260), 5, mirror=True),)]
    t = 0.0
    for cast in parts:
        for frame, _ in group_frames(16, 8.0, cast=cast):
            yield t, frame
            t += 1 / 8


def test_a_person_who_leaves_and_comes_back_keeps_their_id_and_another_gets_their_own(people_settings):
    registry = create_registry(people_settings)
    pipeline = FacePipeline("door", None, people_settings, create_detector(people_settings),
                            create_tracker(people_settings), crop=CropPolicy(64, 1, 0.1),
                            reader=create_face_reader(people_settings, registry))
    events = []
    for t, frame in footage():
        events += pipeline.process(t, frame).lifecycle
    events += pipeline.finish().lifecycle
    new = [e for e in events if e.type == "track_new"]
    assert [e.track_id for e in new] == [1, 2, 3]
    astronaut, hopper, back = new
    assert back.person_id == astronaut.person_id != hopper.person_id
    assert [e.seen_before for e in new] == [False, False, True] and 4 < back.absent_s < 8
    lost = {e.track_id: e.person_id for e in events if e.type == "track_lost"}
    assert lost == {e.track_id: e.person_id for e in new}
    assert pipeline.reader.landmark_runs < 0.4 * sum(1 for _ in footage())  # not every frame


def test_with_recognition_off_person_id_is_the_track_id_and_no_descriptor_is_taken(people_settings):
    settings = people_settings.model_copy(update={"person_recognition": False})
    reader = create_face_reader(settings, create_registry(settings))
    pipeline = FacePipeline("door", None, settings, create_detector(settings), create_tracker(settings),
                            crop=CropPolicy(64, 1, 0.1), reader=reader)
    events = [e for t, frame in footage() for e in pipeline.process(t, frame).lifecycle]
    new = [e for e in events if e.type == "track_new"]
    assert [(e.track_id, e.person_id, e.seen_before) for e in new] == [(1, 1, False), (2, 2, False), (3, 3, False)]
    assert reader.describer is None and reader.descriptor_runs == 0 and reader.registry is None


LABELS = ["happy", "sad", "neutral"]


def test_events_carry_who_and_how_well_and_the_prompt_states_no_emotion_of_an_uncertain_face():
    happy = np.array([0.8, 0.1, 0.1])
    back = emotion_event(window(reading(seen_before=True, absent_s=62.0)), happy, LABELS, "cam", "m",
                         min_confidence=0.3)
    assert (back.person_id, back.looking, back.uncertain_reason) == (7, True, None)
    assert back.head_pose.yaw == 3 and back.quality.face_px == 110
    assert back.prompt.startswith("The person who was here a minute ago, now back, has looked happy")
    assert "They are looking at you." in back.prompt
    blurred = emotion_event(window(reading(uncertain_reason="blurred", looking=False)), happy, LABELS, "cam", "m")
    assert blurred.uncertain_reason == "blurred" and "happy" not in blurred.prompt
    assert "can't see their face well" in blurred.prompt and "not looking at you" in blurred.prompt
    # The smoother's label (index 0) at 0.28: under uncertain_confidence.
    unsure = emotion_event(window(reading()), np.array([0.28, 0.27, 0.45]), LABELS, "cam", "m", label_index=0,
                           min_confidence=0.3)
    assert unsure.uncertain_reason == "low_confidence" and "happy" not in unsure.prompt
    # The event's JSON: the reading's parts, never its place in the camera's frame or anything like a descriptor.
    data = json.loads(back.model_dump_json())
    assert "position_m" not in data and "orientation_xyzw" not in data and not longest_number_list(data) > 4


def test_a_group_prompt_says_who_is_back_who_looks_at_you_and_whose_face_cannot_be_read():
    templates = PromptTemplates()
    faces = [FaceState(1, "happy", 0.9, (50, 100, 100, 100), 0, 2, absent_s=12.0, looking=True),
             FaceState(2, "sad", 0.9, (500, 100, 100, 100), 0, 2, uncertain=True)]
    assert describe_scene(faces, 640, templates) == (
        "Two people are in front of you: the one on the left, who was here 12 seconds ago, (looking at you) looks "
        "happy and you can't see the face of the one on the right well.")


def test_clip_reports_mark_uncertain_spans():
    def event(t, reason):
        return emotion_event(window(reading(uncertain_reason=reason)), np.array([0.8, 0.1, 0.1]), LABELS, "c", "m"
                             ).model_copy(update={"t_start": t - 0.5, "t_end": t})

    spans = uncertain_spans([event(1, None), event(2, "blurred"), event(3, "blurred"), event(4, None),
                             event(5, "too_small")])
    assert [(s.t_start, s.t_end, s.reason, s.events) for s in spans] == [(1.5, 3, "blurred", 2),
                                                                         (4.5, 5, "too_small", 1)]


def longest_number_list(value) -> int:
    """The longest list of numbers anywhere in a JSON value (a descriptor would be 128 long)."""
    if isinstance(value, dict):
        return max([longest_number_list(v) for v in value.values()] + [0])
    if isinstance(value, list):
        own = len(value) if value and all(isinstance(v, (int, float)) for v in value) else 0
        return max([own] + [longest_number_list(v) for v in value])
    return 0


@pytest.fixture(scope="module")
def people_server(astronaut_clip, tmp_path_factory):
    from service.config import Settings

    log = tmp_path_factory.mktemp("events") / "events.jsonl"
    settings = Settings(_env_file=None, token=TOKEN, event_log=log, heartbeat_s=0.5)
    app = create_app(settings, sources=[f"face={astronaut_clip}"])
    with running_server(app) as base:
        yield base, log


def test_descriptors_stay_in_memory_and_delete_forgets_them(people_server, caplog):
    base, log = people_server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    caplog.set_level(logging.DEBUG)

    def person_in_view():
        tracks = httpx.get(base + "/v1/state", headers=auth, timeout=30).json()["sources"]["face"]["tracks"]
        return next((t for t in tracks if t["person_id"] is not None and t["label"]), None)

    track = wait_for(person_in_view, timeout=90)
    assert track["looking"] is not None and track["quality"]["face_px"] > 40
    assert httpx.delete(base + "/v1/people", timeout=30).status_code == 401  # the token guards it
    answer = httpx.delete(base + "/v1/people", headers=auth, timeout=30)
    assert answer.status_code == 200 and answer.json()["forgotten"] >= 1
    assert httpx.delete(base + "/v1/people", headers=auth, timeout=30).json() == {"forgotten": 0}

    lines = wait_for(lambda: [json.loads(line) for line in log.read_text().splitlines()
                              if '"emotion"' in line] or None, timeout=30)
    assert all(line["person_id"] is not None and "quality" in line for line in lines)
    state = httpx.get(base + "/v1/state", headers=auth, timeout=30).json()
    metrics = httpx.get(base + "/metrics", headers=auth, timeout=30).text
    assert max(longest_number_list(line) for line in lines) <= 4 and longest_number_list(state) <= 4
    assert "descriptor" not in metrics.lower() and "descriptor" not in log.read_text()
    assert "descriptor" not in caplog.text.lower()


def test_a_clip_thread_loads_its_face_nets_once_and_no_other_thread_shares_them():
    import threading

    from service.people.wiring import thread_nets

    landmarks, descriptors = thread_nets(describe=True)
    assert thread_nets(describe=True) == (landmarks, descriptors)
    assert thread_nets(describe=False) == (landmarks, None)
    other = []
    worker = threading.Thread(target=lambda: other.extend(thread_nets(describe=True)))
    worker.start()
    worker.join()
    assert other[0] is not landmarks and other[1] is not descriptors
