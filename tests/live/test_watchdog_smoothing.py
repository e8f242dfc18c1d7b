import numpy as np

from service.live.watchdog import Health, Watchdog, restart_reason
from service.smoothing import Smoother, ema, hysteresis_label


def test_restart_reasons():
    assert restart_reason(Health(True, 10.0), now=15.0, stall_s=20) is None
    assert restart_reason(Health(False, 10.0), now=11.0, stall_s=20) == "thread died"
    assert "no progress" in restart_reason(Health(True, 10.0), now=31.0, stall_s=20)
    assert "stuck" in restart_reason(Health(True, 30.0, busy_since=5.0), now=31.0, stall_s=20)
    assert restart_reason(Health(True, None), now=1000.0, stall_s=20) is None  # e.g. a source reconnecting


def test_watchdog_restarts_with_spacing_and_counts():
    now = [0.0]
    health = [Health(False, 0.0)]
    restarts = []
    dog = Watchdog(clock=lambda: now[0], stall_s=5, retry_interval_s=10)
    dog.watch("capture:cam", lambda: health[0], lambda: restarts.append(now[0]))
    dog.check()
    now[0] = 3.0
    dog.check()  # still dead, but the last restart was 3 s ago
    now[0] = 12.0
    dog.check()
    health[0] = Health(True, 12.0)
    now[0] = 30.0
    dog.check()  # alive but no progress for 18 s
    assert restarts == [0.0, 12.0, 30.0]
    assert dog.restarts == {"capture:cam": 3} and "no progress" in dog.last_reasons["capture:cam"]


def test_a_stopping_watchdog_restarts_nothing_and_a_stopped_runtime_leaves_no_thread_behind():
    restarts = []
    dog = Watchdog(clock=lambda: 0.0)
    # The runtime stops its threads while the watchdog may be in the middle of a check: they look dead.
    dog.watch("capture:cam", lambda: (dog.stop(), Health(False, 0.0))[1], lambda: restarts.append("capture"))
    dog.watch("faces:cam", lambda: Health(False, 0.0), lambda: restarts.append("faces"))
    dog.check()
    assert restarts == [] and dog.restarts == {}

    import threading
    import time

    from service.config import Settings
    from service.inference import create_engine
    from service.live.runtime import LiveRuntime

    settings = Settings(_env_file=None, watchdog_interval_s=0.05, watchdog_retry_s=0.0, reconnect_backoff_s=0.05)
    runtime = LiveRuntime(settings, create_engine(settings), ["idle=rtsp://127.0.0.1:9/none"])
    runtime.start()
    time.sleep(0.3)
    runtime.stop()
    time.sleep(0.3)
    assert not [t.name for t in threading.enumerate() if t.name in ("capture-idle", "faces-idle", "watchdog")]


def test_ema_and_hysteresis():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(ema(None, a, 0.3), a) and np.allclose(ema(a, b, 0.3), [0.7, 0.3])
    assert hysteresis_label(None, np.array([0.4, 0.6]), 0.15) == 1
    assert hysteresis_label(0, np.array([0.45, 0.55]), 0.15) == 0  # lead of 0.10 is not enough
    assert hysteresis_label(0, np.array([0.3, 0.7]), 0.15) == 1


def test_smoother_steadies_a_flickering_label():
    happy, sad = np.array([0.8, 0.2]), np.array([0.35, 0.65])
    sequence = [happy, sad, happy, sad, happy]
    raw = Smoother("none")
    assert [raw.update("s", 1, p)[0] for p in sequence] == [0, 1, 0, 1, 0]
    steady = Smoother("hysteresis", alpha=0.5, margin=0.15)
    assert [steady.update("s", 1, p)[0] for p in sequence] == [0, 0, 0, 0, 0]
    # A real, lasting change does come through.
    assert [steady.update("s", 1, sad)[0] for _ in range(4)][-1] == 1
    # Tracks are independent, and forgetting a track starts it afresh.
    assert Smoother("ema").update("s", 2, sad)[0] == 1
    steady.forget("s", 1)
    assert steady.update("s", 1, sad)[0] == 1


def test_smoother_memory_is_bounded():
    smoother = Smoother("ema", max_tracks=3)
    for track in range(10):
        smoother.update("s", track, np.array([0.5, 0.5]))
    assert len(smoother._tracks) == 3 and ("s", 9) in smoother._tracks and ("s", 0) not in smoother._tracks


def test_switch_smoother_changes_the_label_after_a_lead_of_switch_s_whatever_the_window_rate():
    happy, sad = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    for hop_s in (0.125, 0.25, 0.5):  # windows every 1, 2 or 4 sampled frames at 8 fps
        smoother = Smoother("switch", margin=0.15, average_s=0.25, switch_s=0.5)
        times = np.arange(0, 4, hop_s)
        labels = [smoother.update("s", 1, happy if t < 2 else sad, t)[0] for t in times]
        changed = times[labels.index(1)]
        # The average leads by the margin within a window or two; the switch comes switch_s later.
        assert 2.5 <= changed <= 2.5 + 2 * hop_s + 0.25, (hop_s, changed)
        assert all(label == 1 for label in labels[labels.index(1):])


def test_switch_smoother_ignores_a_short_blip():
    happy, sad = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    smoother = Smoother("switch", margin=0.15, average_s=0.25, switch_s=0.5)
    times = np.arange(0, 4, 0.125)
    blip = (times >= 2) & (times < 2.375)  # three sampled frames of another expression
    labels = [smoother.update("s", 1, sad if b else happy, t)[0] for t, b in zip(times, blip)]
    assert set(labels) == {0}
