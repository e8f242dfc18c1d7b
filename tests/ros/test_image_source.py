"""`--source ros:/topic`: the sample clip published by a camera driver (best effort as CompressedImage, reliable as
Image) feeds the live pipeline, and expressions come out on ROS stamped with the images' own stamps; a driver that
falls silent, exits and comes back is ridden through (waiting, never restarted, counters kept); broken, oversized and
unreadable messages are skipped and counted by reason while the source stays up for the others."""

import itertools
import logging
import time

import pytest
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic

from service.config import Settings
from service.inference import create_engine
from service.live.runtime import LiveRuntime
from service.ingest.frame_source import Grab
from service.ros.messages import Expression, Header, IdsList, Image, Time
from service.ros.publisher import start_publisher
from tests.ros.camera_driver import DriverProcess
from tests.ros.dds import BEST_EFFORT, RELIABLE, CameraDriver, reader, take_until, own_participant
from tests.ros.test_hostile_images import scripted_source
from tests.server import wait_for

HRI_EXPRESSIONS = {"neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared"}


@pytest.fixture(scope="module")
def ros_settings():
    return Settings(_env_file=None, capture_timeout_ms=1500, reconnect_backoff_s=0.2, reconnect_max_s=1.0,
                    ros={"enabled": True})


@pytest.fixture(scope="module")
def engine(ros_settings):
    return create_engine(ros_settings)


@pytest.fixture(scope="module")
def dp():
    return own_participant()


@pytest.mark.parametrize("kind,topic,qos", [("jpeg", "/camera/image_raw/compressed", BEST_EFFORT),
                                            ("bgr8", "/camera/image_raw", RELIABLE)], ids=["compressed", "raw"])
def test_the_sample_clip_as_a_ros_topic_gives_expressions_stamped_like_its_images(ros_settings, engine, dp, kind,
                                                                                     topic, qos):
    runtime = LiveRuntime(ros_settings, engine, sources=[f"head=ros:{topic}"])
    publisher = start_publisher(ros_settings.ros, runtime)
    emotions = []
    runtime.bus.add_sink(lambda event: event.type == "emotion" and emotions.append(event))
    tracked = reader(dp, "/humans/faces/tracked", IdsList)
    driver = CameraDriver(dp, topic, kind, qos)
    driver.start()
    runtime.start()
    publisher.start()
    try:
        lists = take_until(tracked, lambda samples: any(s.ids for s in samples))
        face_id = next(s.ids[0] for s in lists if s.ids)
        assert face_id.startswith(publisher.tag + "_head_")
        expressions = take_until(reader(dp, f"/humans/faces/{face_id}/expression", Expression), bool, timeout=120)
    finally:
        publisher.stop()
        runtime.stop()
        driver.stop()
    expression = expressions[0]
    # The header is the image's own: its stamp (the driver's clock, far from ours) and frame_id.
    assert (expression.header.stamp.sec, expression.header.stamp.nanosec) in driver.stamps
    assert expression.header.frame_id == "test_camera"
    assert expression.expression in HRI_EXPRESSIONS and 0 <= expression.confidence <= 1
    assert -1 <= expression.valence <= 1 and -1 <= expression.arousal <= 1
    event = emotions[0]
    assert event.source == "head" and expression.expression == ros_settings.ros.expressions[event.label]
    assert abs(expression.valence - event.valence) < 1e-6 and abs(expression.confidence - event.confidence) < 1e-6
    status = runtime.snapshot().sources["head"]
    assert status.kind == "ros" and status.frames_read > 0 and status.frames_skipped == 0


def test_grab_takes_a_message_and_only_retrieve_converts_it(monkeypatch):
    import service.ros.images as images

    good = Image(Header(Time(1, 0), "cam"), 2, 2, "mono8", 0, 2, bytes(4))
    short = Image(Header(Time(2, 0), "cam"), 2, 2, "mono8", 0, 2, bytes(3))
    bayer = Image(Header(Time(3, 0), "cam"), 2, 2, "bayer_rggb8", 0, 2, bytes(4))
    converted = []
    monkeypatch.setattr(images, "image_to_bgr", lambda msg, limits, convert=images.image_to_bgr: converted.append(msg)
                        or convert(msg, limits))
    source, _ = scripted_source([good, good, short, bayer, good])
    assert source.grab() is Grab.FRAME and source.stamp().stamp == Time(1, 0) and converted == []  # not converted
    assert source.grab() is Grab.FRAME  # the first one dropped unconverted (not sampled)
    image = source.retrieve()
    assert image.shape == (2, 2, 3) and len(converted) == 1
    # Pixels that do not add up, and an encoding we cannot convert: both found from the header, on grab.
    assert source.grab() is Grab.SKIPPED and source.last_skip.reason == "broken"
    assert source.grab() is Grab.SKIPPED and source.last_skip.reason == "unsupported"
    assert "'bayer_rggb8'" in source.last_skip.detail
    assert source.grab() is Grab.FRAME and source.failure is None  # and the source goes on


@pytest.fixture
def lifecycle_settings(ros_settings):
    # A watchdog that would restart a capture after 3 s without a frame, if it took a waiting source for a stuck one.
    return ros_settings.model_copy(update={"stall_s": 3.0, "watchdog_interval_s": 0.5, "watchdog_retry_s": 1.0,
                                           "track_silence_s": 1.0})


def ready(runtime) -> bool:
    return all(runtime.sources_alive.values())


@pytest.mark.parametrize("kind,topic,qos", [("jpeg", "/driver/image_raw/compressed", "best_effort"),
                                            ("bgr8", "/driver/image_raw", "reliable")], ids=["compressed", "raw"])
def test_a_camera_driver_that_falls_silent_restarts_and_comes_back_is_ridden_through(lifecycle_settings, engine,
                                                                                       kind, topic, qos, caplog):
    """Two real participants: the service, and a camera driver in a process of its own that falls silent, comes
    back, exits (as a driver does on every restart) and is started again."""
    runtime = LiveRuntime(lifecycle_settings, engine, sources=[f"head=ros:{topic}"])
    events = []
    runtime.bus.add_sink(events.append)
    state = lambda: runtime.snapshot().sources["head"]  # noqa: E731
    driver = DriverProcess(topic, kind, qos)
    runtime.start()
    try:
        wait_for(lambda: state().status == "open" and state().tracks, timeout=60)
        capture = runtime.runners["head"].capture
        first_track = state().tracks[0].track_id

        # Silent: one steady state, `waiting`, not ready throughout, never restarted; the tracks end.
        driver.pause()
        with caplog.at_level(logging.INFO, logger="service.ingest.capture"):
            wait_for(lambda: state().status == "waiting", timeout=30)
            assert "no usable frame" in state().waiting_for and not state().alive
            readiness = []
            deadline = time.monotonic() + 4.0  # longer than stall_s
            while time.monotonic() < deadline:
                readiness.append(ready(runtime))
                time.sleep(0.05)
        assert not any(readiness) and state().status == "waiting" and state().tracks == []
        assert any(e.type == "track_lost" and e.track_id == first_track for e in events)

        driver.resume()
        wait_for(lambda: state().status == "open" and state().tracks, timeout=60)
        assert state().tracks[0].track_id > first_track  # after the silence: a fresh start
        read_before = state().frames_read

        # The driver's process exits: DDS says its writer is gone; the source waits for a publisher.
        driver.exit()
        wait_for(lambda: state().status == "waiting", timeout=30)
        wait_for(lambda: state().waiting_for == f"no publisher on ROS topic {topic}", timeout=30)
        driver = DriverProcess(topic, kind, qos)  # the driver restarted
        wait_for(lambda: state().status == "open" and state().frames_read > read_before + 5, timeout=60)

        # All of it without a thread dying, a reconnect, a watchdog restart or a counter reset.
        assert runtime.runners["head"].capture is capture and capture.is_alive()
        assert state().reconnects == 0 and runtime.snapshot().watchdog_restarts == {}
        assert state().frames_read > read_before and state().frames_skipped == 0
        waiting_lines = [r.getMessage() for r in caplog.records if "waiting:" in r.getMessage()]
        assert sum("no usable frame" in line for line in waiting_lines) == 1  # the silence, said once
        assert sum("no publisher" in line for line in waiting_lines) == 1  # the driver's exit, said once
    finally:
        runtime.stop()
        driver.exit()


def test_messages_the_service_cannot_read_are_skipped_and_the_source_stays_up_for_the_others(ros_settings,
                                                                                               engine, dp, caplog):
    caplog.set_level(logging.DEBUG, logger="service.ingest.capture")
    topic = "/robot/camera/image"
    runtime = LiveRuntime(ros_settings, engine, sources=[f"cam=ros:{topic}"])
    driver = CameraDriver(dp, topic, "mono8", RELIABLE)
    state = lambda: runtime.snapshot().sources["cam"]  # noqa: E731
    driver.start()
    runtime.start()
    try:
        wait_for(lambda: state().status == "open" and state().frames_read > 0, timeout=60)
        hostile = DataWriter(dp, Topic(dp, "rt" + topic, Image), qos=RELIABLE)

        # Broken, oversized and unreadable messages between good ones: skipped, counted by reason, the source open.
        # One at a time: the camera reader keeps only the newest message (keep last 1).
        messages = itertools.cycle([
            Image(Header(Time(5, 0), "x"), 48, 64, "bgr8", 0, 192, bytes(100)),  # too few bytes
            Image(Header(Time(5, 0), "x"), 20000, 20000, "bgr8", 0, 60000, b""),  # declares 1.2 GB
            Image(Header(Time(5, 0), "x"), 2, 5, "yuv422", 0, 10, bytes(20)),  # odd width
            Image(Header(Time(7, 0), "x"), 2, 2, "bayer_rggb8\n", 0, 2, bytes(4))])

        def send_hostile():
            hostile.write(next(messages))
            skipped = state().skipped
            return all(skipped.get(reason, 0) >= 2 for reason in ("broken", "refused_size", "unsupported"))

        wait_for(send_hostile, timeout=30)
        assert state().status == "open" and state().reconnects == 0
        assert "image with step 192 and 100 bytes" in caplog.text

        # Only messages it cannot read: waiting, and the last error says why, the encoding escaped and shortened.
        driver.paused.set()
        unknown = Image(Header(Time(7, 0), "x"), 2, 2, "bayer_rggb8\x1b[2J" + "x" * 200, 0, 2, bytes(4))
        wait_for(lambda: hostile.write(unknown) or state().status == "waiting", timeout=30)
        error = state().last_error
        assert "not supported" in error and "\x1b" not in error and "\\x1b" in error and len(error) < 200
        driver.paused.clear()
        wait_for(lambda: state().status == "open", timeout=30)
        assert state().last_error is None and state().reconnects == 0
    finally:
        runtime.stop()
        driver.stop()
