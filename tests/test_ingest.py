import pytest

from service.errors import ClipError
from service.ingest import ClipDecoder, FrameSampler, probe_clip


def test_decoder_yields_every_frame_in_order_with_timestamps(astronaut_clip):
    frames = list(ClipDecoder(astronaut_clip))
    assert len(frames) == 75  # 3 s at 25 fps
    assert [f.index for f in frames] == list(range(75))
    assert frames[0].t == 0.0
    assert frames[-1].t == pytest.approx(74 / 25, abs=1e-3)
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype.name == "uint8"


def test_probe_reports_size_and_rate(astronaut_clip):
    info = probe_clip(astronaut_clip)
    assert (info.width, info.height) == (640, 480)
    assert info.fps == pytest.approx(25.0)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is a text file, not a video\n" * 20, "not a readable video"),
    (bytes(range(256)) * 64, "not a readable video"),
])
def test_bad_files_are_clip_errors(tmp_path, content, message):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(ClipError, match=message):
        list(ClipDecoder(path))


def test_an_audio_only_file_is_not_a_readable_video(tmp_path):
    """What random bytes sometimes probe as (an audio format): the same 422-style message as any non-video."""
    import wave

    path = tmp_path / "speech.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1), audio.setsampwidth(2), audio.setframerate(8000)
        audio.writeframes(b"\x00\x01" * 8000)
    with pytest.raises(ClipError, match="not a readable video file: .*speech.wav \\(no video stream\\)"):
        ClipDecoder(path)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(ClipError, match="not found"):
        ClipDecoder(tmp_path / "nope.mp4")
    with pytest.raises(ClipError, match="directory"):
        ClipDecoder(tmp_path)


def test_truncated_mp4_is_a_clear_error(astronaut_clip, tmp_path):
    data = astronaut_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # PyAV writes the mp4 index last, so half a file has none
    with pytest.raises(ClipError, match="not a readable video"):
        list(ClipDecoder(cut))


def test_truncated_stream_keeps_the_frames_before_the_damage(tmp_path):
    from tests.clips import astronaut_bgr, pan_zoom_frames, write_clip

    whole = write_clip(tmp_path / "whole.mkv", pan_zoom_frames(astronaut_bgr(), (320, 240), 25, 3.0))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    frames = list(ClipDecoder(cut))
    assert 10 < len(frames) < 75


def test_sampler_takes_8_of_25_fps():
    sampler = FrameSampler(8.0)
    kept = [i / 25 for i in range(250) if sampler.accept(i / 25)]
    assert len(kept) == pytest.approx(80, abs=1)
    gaps = [b - a for a, b in zip(kept, kept[1:])]
    assert min(gaps) >= 0.119 and max(gaps) <= 0.161


def test_sampler_keeps_every_frame_of_a_slow_source():
    sampler = FrameSampler(8.0)
    assert all(sampler.accept(i / 5) for i in range(20))


def test_sampler_does_not_burst_after_a_gap():
    sampler = FrameSampler(8.0)
    assert sampler.accept(0.0)
    assert sampler.accept(5.0)
    assert not sampler.accept(5.04)
    assert sampler.accept(5.13)


def test_sampler_rejects_bad_rate():
    with pytest.raises(ValueError):
        FrameSampler(0)
