"""What the service publishes on ROS 2 (REP-155 / ROS4HRI naming, hri_msgs 2.0.0 types):

    /humans/faces/tracked            hri_msgs/IdsList   ids of the faces in view: on every change, at least once
                                     a second
    /humans/faces/<id>/roi           hri_msgs/NormalizedRegionOfInterest2D   the face box in [0, 1], per sampled frame
    /humans/faces/<id>/expression    hri_msgs/Expression   per emotion event: label as an hri_msgs constant,
                                     confidence, valence, arousal; stamped with the window's last frame
    /emotion_perception/prompt       std_msgs/String    the event's prompt for the LLM
    /emotion_perception/messages     std_msgs/String    the event's chat messages, as JSON
    /tf                              tf2_msgs/TFMessage   each face's pose as the frame face_<id> (x out of the
                                     face, y to the person's left, z up) in the camera's frame (the headers'
                                     frame_id), per sampled frame with a head pose
    /humans/persons/tracked          hri_msgs/IdsList   ids of the persons in view, like faces/tracked
    /humans/persons/<id>/face_id     std_msgs/String    the face id of the person's face in view (with tracked)

An expression whose event is uncertain (its face too small, cut off, turned away or blurred, or the label not
confident: the event's uncertain_reason) is published with confidence 0: the label is the model's guess, not a
reading to act on.

Person ids are `<run>_<source>_p<person_id>` (the same person's faces share one across tracks while the service
remembers them; with person_recognition off one per track).
Face ids are `<run>_<source>_<track>`: <run> is four random letters drawn at start, so an id is never reused while the
service runs (track ids are never reused within a run) and is unlikely to be reused by the next run. Headers carry
the capture time of the frame they describe: the image's own stamp and frame_id for a ROS image source, else the
wall clock at capture (ROS time) and the source's name (or the frame_id setting).

Emotion events come from the event bus (`on_event`, a bus sink: quick, never raises); faces in view and their boxes
are read from the live state every `poll_s` by this publisher's own thread.
"""

from __future__ import annotations

import json
import logging
import random
import re
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic

from service.live.sinks import QueuedSink
from service.threads import PeriodicThread
from service.state import LiveState
from service.ros.dds import dds_topic_name, output_qos, participant
from service.ros.messages import (Expression, Header, IdsList, NormalizedRegionOfInterest2D, Quaternion, String,
                                  TFMessage, Time, Transform, TransformStamped, Vector3)
from service.ros.settings import RosSettings

log = logging.getLogger(__name__)

# (source, service-clock time) -> the header of messages about that frame
HeaderOf = Callable[[str, float], Header]


def ros_time(seconds: float) -> Time:
    sec = int(seconds // 1)
    return Time(sec, min(999_999_999, int(round((seconds - sec) * 1e9))))


def face_token(source: str) -> str:
    """A source name as a piece of a ROS name (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", source)


def run_tag(rng: random.Random | None = None) -> str:
    return "".join((rng or random.SystemRandom()).choice(string.ascii_lowercase) for _ in range(4))


def normalized_roi(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, ...]:
    """x, y, w, h in pixels -> xmin, ymin, xmax, ymax in [0, 1] (clipped: a box may reach past the frame)."""
    x, y, w, h = box
    clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731
    return clip(x / width), clip(y / height), clip((x + w) / width), clip((y + h) / height)


@dataclass
class _Face:
    roi: DataWriter
    expression: DataWriter
    last_roi_t: float | None = None
    last_tf_t: float | None = None
    last_used: float = 0.0  # monotonic


def face_transform(header: Header, child_frame_id: str, position_m, orientation_xyzw) -> TransformStamped:
    return TransformStamped(header, child_frame_id, Transform(Vector3(*map(float, position_m)),
                                                              Quaternion(*map(float, orientation_xyzw))))


class RosPublisher:
    def __init__(self, settings: RosSettings, state: LiveState, header_of: HeaderOf, tag: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings, self.state, self.header_of, self.monotonic = settings, state, header_of, monotonic
        self.tag = tag or run_tag()
        self._dp = participant()
        self._tracked = self._writer(IdsList, "/humans/faces/tracked")
        self._persons_tracked = self._writer(IdsList, "/humans/persons/tracked")
        self._tf = self._writer(TFMessage, "/tf")
        self._person_face_ids: dict[str, DataWriter] = {}  # person id -> its face_id writer, while in view
        self._prompt = self._writer(String, settings.prompt_topic)
        self._messages = self._writer(String, settings.messages_topic)
        self._faces: dict[tuple[str, int], _Face] = {}
        self._lock = threading.Lock()
        self._last_ids: list[str] | None = None
        self._last_tracked_at = 0.0
        self._thread = PeriodicThread("ros-publisher", settings.poll_s, self.poll)
        self.published = 0
        self._event_errors = 0

    def face_id(self, source: str, track_id: int) -> str:
        return f"{self.tag}_{face_token(source)}_{track_id}"

    def person_id(self, source: str, person_id: int) -> str:
        return f"{self.tag}_{face_token(source)}_p{person_id}"

    def _writer(self, message_type: type, ros_topic: str) -> DataWriter:
        topic = Topic(self._dp, dds_topic_name(ros_topic), message_type)
        return DataWriter(self._dp, topic, qos=output_qos(message_type))

    def _face(self, source: str, track_id: int) -> _Face:
        key = (source, track_id)
        with self._lock:
            face = self._faces.get(key)
            if face is None:
                base = f"/humans/faces/{self.face_id(source, track_id)}"
                face = self._faces[key] = _Face(self._writer(NormalizedRegionOfInterest2D, base + "/roi"),
                                                self._writer(Expression, base + "/expression"))
            face.last_used = self.monotonic()
            return face

    # ---- the event bus ------------------------------------------------------------------------------------------

    def on_event(self, event) -> None:
        """Bus sink: an emotion event becomes the face's expression, the prompt and the chat messages."""
        if event.type != "emotion":
            return
        try:
            header = self.header_of(event.source, event.t_end)
            label = self.settings.expressions.get(event.label, event.label)
            confidence = 0.0 if event.uncertain_reason is not None else float(event.confidence)
            self._face(event.source, event.track_id).expression.write(Expression(
                header, label, _or_zero(event.valence), _or_zero(event.arousal), confidence))
            self._prompt.write(String(event.prompt))
            self._messages.write(String(json.dumps([m.model_dump() for m in event.messages])))
            self.published += 3
        except Exception:  # a sink must not raise into the pipeline
            self._event_errors += 1
            log.exception("ROS publisher: emotion event of %s track %s not published", event.source, event.track_id)

    # ---- faces in view, polled ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._thread.stop_and_join(timeout)

    @property
    def errors(self) -> int:
        """Emotion events not published, and polls of the faces in view that failed (logged)."""
        return self._event_errors + self._thread.errors

    def poll(self) -> None:
        """roi of every face seen in a new frame; the tracked list on a change or when tracked_period_s passed;
        writers of faces gone for lost_face_keep_s deleted (their topics disappear)."""
        ids, in_view, latest = [], set(), None  # latest: (t, source) of the newest frame with a face
        persons: dict[str, str] = {}  # person id -> face id, of the faces in view
        transforms = []
        for source in self.state.sources():
            tracks, _ = self.state.tracks(source)
            width, height = self.state.frame_size(source)
            for track in sorted(tracks, key=lambda t: t.track_id):
                face_id = self.face_id(source, track.track_id)
                ids.append(face_id)
                in_view.add((source, track.track_id))
                face = self._face(source, track.track_id)
                reading = track.reading
                if reading is not None:
                    persons[self.person_id(source, reading.person_id)] = face_id
                if width and height and face.last_roi_t != track.last_seen:
                    face.last_roi_t = track.last_seen
                    face.roi.write(NormalizedRegionOfInterest2D(
                        self.header_of(source, track.last_seen), *normalized_roi(track.box, width, height), 1.0))
                    self.published += 1
                if reading is not None and reading.position_m is not None and face.last_tf_t != track.last_seen:
                    face.last_tf_t = track.last_seen
                    transforms.append(face_transform(self.header_of(source, track.last_seen), f"face_{face_id}",
                                                     reading.position_m, reading.orientation_xyzw))
                if latest is None or track.last_seen > latest[0]:
                    latest = (track.last_seen, source)
        if transforms:
            self._tf.write(TFMessage(transforms))
            self.published += 1
        now = self.monotonic()
        if ids != self._last_ids or now - self._last_tracked_at >= self.settings.tracked_period_s:
            header = self.header_of(latest[1], latest[0]) if latest else self.header_now()
            self._tracked.write(IdsList(header, ids))
            self._persons_tracked.write(IdsList(header, sorted(persons)))
            for person_id, face_id in persons.items():
                writer = self._person_face_ids.get(person_id)
                if writer is None:
                    writer = self._person_face_ids[person_id] = self._writer(
                        String, f"/humans/persons/{person_id}/face_id")
                writer.write(String(face_id))
            for person_id in [p for p in self._person_face_ids if p not in persons]:
                del self._person_face_ids[person_id]  # out of view: its face_id topic goes away
            self.published += 2 + len(persons)
            self._last_ids, self._last_tracked_at = ids, now
        with self._lock:
            for key in [k for k, f in self._faces.items()
                        if k not in in_view and now - f.last_used > self.settings.lost_face_keep_s]:
                del self._faces[key]  # its writers go with it: the face's topics are unpublished

    def header_now(self) -> Header:
        return Header(ros_time(time.time()), self.settings.frame_id or "")

    @property
    def faces_with_topics(self) -> int:
        with self._lock:
            return len(self._faces)


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def runtime_headers(runtime, frame_id: str | None) -> HeaderOf:
    """Headers for frames of a LiveRuntime: a ROS image source's own stamp and frame_id where the capture kept it,
    else the wall-clock time at which the frame was captured (the service clock shifted to the epoch) and the
    source's name; `frame_id` (a setting) overrides the frame id."""

    def header_of(source: str, t: float) -> Header:
        runner = runtime.runners.get(source)
        own = runner.capture.source_stamp(t) if runner is not None else None
        if own is not None:
            return Header(own.stamp, frame_id or own.frame_id)
        return Header(ros_time(time.time() - (runtime.clock() - t)), frame_id or source)

    return header_of


def start_publisher(settings: RosSettings, runtime) -> RosPublisher:
    """The publisher for a LiveRuntime, subscribed to its bus and polling its state (RosError when DDS cannot
    start: a bad CYCLONEDDS_URI or ROS_DOMAIN_ID)."""
    publisher = RosPublisher(settings, runtime.state, runtime_headers(runtime, settings.frame_id))
    # Off the inference thread like every sink that sends: drops and errors in /metrics under sink="ros".
    runtime.add_sink(QueuedSink("ros", publisher.on_event, runtime.settings.sink_queue))
    return publisher
