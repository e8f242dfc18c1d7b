"""Settings: one object, environment and TOML file, documented in docs/CONFIGURATION.md."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import CONFIG_FILE_ENV, Settings

CONFIGURATION_PAGE = Path(__file__).resolve().parent.parent / "docs" / "CONFIGURATION.md"


def test_every_setting_is_documented_in_the_configuration_page():
    text = CONFIGURATION_PAGE.read_text()
    missing = [name for name in Settings.model_fields if f"`EMOTION_{name.upper()}`" not in text]
    assert missing == []


def test_environment_nested_and_list_values(monkeypatch):
    monkeypatch.setenv("EMOTION_SAMPLE_FPS", "5")
    monkeypatch.setenv("EMOTION_SOURCES", '["0", "door=rtsp://cam/live"]')
    monkeypatch.setenv("EMOTION_FORWARDER__ENABLED", "true")
    monkeypatch.setenv("EMOTION_PROMPTS__NOBODY", "The room is empty.")
    settings = Settings(_env_file=None)
    assert settings.sample_fps == 5 and settings.sources == ["0", "door=rtsp://cam/live"]
    assert settings.forwarder.enabled and settings.prompts.nobody == "The room is empty."


def test_config_file_and_precedence(tmp_path, monkeypatch):
    config = tmp_path / "robot.toml"
    config.write_text('sample_fps = 6.0\nhop = 4\n[forwarder]\nenabled = true\nmodel = "qwen2.5:7b"\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("EMOTION_HOP", "2")
    settings = Settings(_env_file=None, detector="haar")
    assert settings.sample_fps == 6.0 and settings.forwarder.model == "qwen2.5:7b"
    assert settings.hop == 2  # the variable beats the file
    assert settings.detector == "haar"  # an explicit argument beats both


def test_missing_config_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        Settings(_env_file=None)


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("EMOTION_SAMPLE_FPS", "-1")
    with pytest.raises(ValidationError, match="sample_fps"):
        Settings(_env_file=None)
    monkeypatch.delenv("EMOTION_SAMPLE_FPS")
    with pytest.raises(ValidationError, match="single"):
        Settings(_env_file=None, prompts={"single": "looks {nonsense}"})


def test_config_option_is_passed_to_the_settings_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)
    config = tmp_path / "robot.toml"
    config.write_text("hop = 4\n")
    assert Settings.load(config, _env_file=None, sample_fps=5.0).hop == 4
    assert CONFIG_FILE_ENV not in os.environ and Settings(_env_file=None).hop == 2  # nothing left behind
    with pytest.raises(FileNotFoundError, match=r"nope.toml \(--config\)"):
        Settings.load(tmp_path / "nope.toml", _env_file=None)
