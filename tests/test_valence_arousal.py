"""Valence and arousal in emotion events: the model's own when it has them, else the probability-weighted mean of
the categories' published coordinates (the `valence_arousal` setting)."""

import numpy as np
import pytest

from service.config import Settings
from service.events import EmotionEvent
from service.emotions import emotion_event
from service.valence_arousal import CATEGORY_VALENCE_AROUSAL, valence_arousal
from service.windows import Window


def test_one_category_gives_its_coordinates_and_a_mixture_their_weighted_mean():
    assert valence_arousal([0.0, 1.0], ["sad", "happy"]).__dict__ == {"valence": 0.81, "arousal": 0.51,
                                                                     "source": "categories"}
    mixed = valence_arousal([0.25, 0.75], ["sad", "happy"])
    assert mixed.valence == pytest.approx(0.25 * -0.63 + 0.75 * 0.81, abs=1e-4)
    assert mixed.arousal == pytest.approx(0.25 * -0.27 + 0.75 * 0.51, abs=1e-4)


def test_labels_outside_the_table_are_left_out_and_none_known_gives_none():
    assert valence_arousal([0.5, 0.5], ["happy", "sleepy"]).valence == pytest.approx(0.81)
    assert valence_arousal([0.5, 0.5], ["sleepy", "bored"]) is None
    custom = valence_arousal([1.0], ["sleepy"], {"sleepy": (0.1, -0.9)})
    assert (custom.valence, custom.arousal) == (0.1, -0.9)


def test_a_models_own_output_wins_and_is_clipped():
    va = valence_arousal([1.0, 0.0], ["happy", "sad"], model_output=[1.7, -0.2])
    assert (va.valence, va.arousal, va.source) == (1.0, -0.2, "model")


def test_every_dataset_label_has_coordinates_in_range():
    from models.text import DATASET_LABELS  # torch-free module

    labels = {label for order in DATASET_LABELS.values() for label in order}
    assert labels <= set(CATEGORY_VALENCE_AROUSAL)
    assert all(-1 <= v <= 1 and -1 <= a <= 1 for v, a in CATEGORY_VALENCE_AROUSAL.values())


def test_events_carry_valence_arousal_and_old_events_still_parse():
    window = Window(1, np.zeros((16, 8, 8, 1), np.uint8), None, 0.0, 2.0, (0, 0, 10, 10))
    event = emotion_event(window, np.array([0.1, 0.9]), ["sad", "happy"], "camera0", "m")
    assert event.va_source == "categories" and event.valence == pytest.approx(0.1 * -0.63 + 0.9 * 0.81, abs=1e-4)
    table = emotion_event(window, np.array([0.1, 0.9]), ["sad", "happy"], "camera0", "m",
                          va_table={"happy": (0.5, 0.5), "sad": (-0.5, -0.5)})
    assert (table.valence, table.arousal) == (0.4, 0.4)
    old = event.model_dump(exclude={"valence", "arousal", "va_source"})
    assert EmotionEvent(**old).va_source is None  # added fields, nothing renamed


def test_the_table_is_a_setting(monkeypatch):
    monkeypatch.setenv("EMOTION_VALENCE_AROUSAL", '{"happy": [0.9, 0.2]}')
    assert Settings(_env_file=None).valence_arousal == {"happy": (0.9, 0.2)}
    monkeypatch.setenv("EMOTION_VALENCE_AROUSAL", '{"happy": [1.5, 0.2]}')
    with pytest.raises(ValueError):
        Settings(_env_file=None)


def test_clip_events_take_the_valence_arousal_setting():
    from service.emotions import EmotionStage

    class Spec:
        name = "fake"

    class Engine:
        spec, labels = Spec(), ["sad", "happy"]

        def predict_windows(self, items, cache=None):
            return np.array([[0.2, 0.8]] * len(items))

    settings = Settings(_env_file=None, smoothing="none",
                        valence_arousal={"sad": (-1.0, 0.0), "happy": (1.0, 0.5)})
    window = Window(1, np.zeros((16, 8, 8, 1), np.uint8), None, 0.0, 2.0, (0, 0, 10, 10))
    [event] = EmotionStage(settings, Engine()).classify([("clip.mp4", window)], None)
    assert (event.valence, event.arousal, event.va_source) == (0.6, 0.4, "categories")
