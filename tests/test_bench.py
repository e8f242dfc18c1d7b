"""bench/ runs end to end on tiny configurations (figures are printed, never asserted: machines are noisy)."""

import pytest

pytest.importorskip("torch")


def test_cheaper_suite_measures_int8_agreement_and_the_frame_cache_stream():
    from bench import cheaper

    result = cheaper.run(["ous"], "tiny", sizes=[64, 32], repeats=1, hops=(8,))
    (row,) = result["rows"]
    assert row["sgemm_gflops"] > 0 and row["bound_s_per_window"] > 0
    assert [entry["image_size"] for entry in row["sizes"]] == [64, 32]
    for entry in row["sizes"]:
        for precision in ("fp32", "int8"):
            measured = entry[precision]
            assert measured["p50_s"] > 0 and measured["agreement"]["windows"] >= 1
            (stream,) = measured["stream"]  # OUS encodes frames independently: the frame cache applies
            assert stream["hop"] == 8 and stream["frames_encoded_per_window"] == 16  # 8 face + 8 scene frames
    # Full size fp32 against itself through ONNX Runtime: the same model.
    assert row["sizes"][0]["fp32"]["agreement"]["top1"] == 1.0
    assert "stream, hop 8" in cheaper.describe(result)


def test_smaller_sizes_are_patch_multiples():
    from bench.cheaper import smaller_sizes

    assert smaller_sizes(224, 16) == (224, 160, 112)
    assert smaller_sizes(224, 32) == (224, 160, 128)
    assert smaller_sizes(64, 16) == (64, 48, 32)


def test_detectors_suite_counts_faces_against_the_known_boxes(astronaut_clip):
    from bench import detectors

    rows = detectors.detection_rows(group_count=2, clip=astronaut_clip)
    assert [r["detector"] for r in rows] == ["haar", "blazeface-short", "blazeface-full"]
    for row in rows:
        assert row["sample"]["frames"] == 24 and row["sample"]["cpu_ms"] > 0
        for key in ("group", "group_min_face_24"):
            group = row[key]
            assert group["frames"] == 2 and len(group["hits_per_person"]) == 5
            assert group["hits_per_person"]["120px"] == 2  # the near, upright face: every detector, every frame
    assert rows[0]["group"]["haar_hits_missed"] == 0  # Haar against itself
    text = detectors.describe({"clip": "x", "detection": rows, "analyze": {}, "live": {}})
    assert "blazeface-short" in text and "Haar's hits missed" in text


def test_detectors_hd_rows_count_false_faces_and_tracks_per_range(astronaut_clip):
    from bench import detectors

    rows = detectors.hd_rows(astronaut_clip, group_count=2, sizes={"sample": ((640, 480), (1280, 720)),
                                                                   "group": ((640, 480),)})
    assert [(r["source"], r["frame"], r["range"]) for r in rows][:4] == [
        ("sample", "640x480", "short"), ("sample", "640x480", "full"), ("sample", "640x480", "auto"),
        ("sample", "1280x720", "short")]
    assert len(rows) == 9 and all(r["cpu_ms"] > 0 and r["tracks"] >= r["false_tracks"] >= 0 for r in rows)
    assert rows[0]["lost"] == 0 and rows[0]["hits_per_person"]["face"] == 24  # short at 640x480 is the reference
    assert all(len(r["hits_per_person"]) == 5 for r in rows if r["source"] == "group")
    assert "auto" in "\n".join(detectors.describe_hd(rows))


def test_live_cpu_suite_runs_the_live_service_and_splits_its_cpu_by_thread(tmp_path):
    from bench import live_cpu
    from service.config import SAMPLE_CLIP, Settings
    from service.inference import create_engine

    settings = Settings(_env_file=None)
    row = live_cpu.measure(SAMPLE_CLIP, settings, create_engine(settings), seconds=1.0, warm_up_s=1.0)
    shares = row["cpu_percent_of_one_core"]
    assert row["frames_read"] > 0 and shares["process"] > 0
    # The service's own threads are found by name and each measured (the capture decodes, the face worker detects).
    named = {k: v for k, v in shares.items() if k not in ("process", "other")}
    assert {"capture", "faces"} <= set(named) and named["capture"] > 0 and named["faces"] > 0
    # Measured one by one, the threads never add up to more than the process as a whole (two clock ticks aside).
    assert all(v >= 0 for v in named.values()) and shares["other"] >= -100 * 2 / live_cpu.TICK / row["wall_s"]
    # The face worker's share is split by its stages' own timers: detection is most of it on the sample clip.
    split = row["faces_by_stage"]
    assert set(split) == {"detect", "track", "read", "crop"}
    assert split["detect"] >= max(split["track"], split["crop"]) and split["read"] > 0
    assert 0 < row["whole_frame_share"] <= 1 and row["settings"]["detect_every"] == settings.detect_every


def test_live_cpu_suite_measures_the_whole_service_with_a_websocket_client_reading():
    from bench import live_cpu
    from service.config import SAMPLE_CLIP

    row = live_cpu.measure_service(SAMPLE_CLIP, websocket=True, seconds=2.0, warm_up_s=3.0)
    assert row["process"] > 0 and row["messages_received"] >= 1  # a heartbeat or an event at least


def test_regions_suite_measures_arrival_and_motion_per_configuration():
    from bench import regions

    settings = {"detect_every": 4, "detect_every_empty": 2}
    empty, beside = regions.arrival(settings, 8.0, beside=False), regions.arrival(settings, 8.0, beside=True)
    assert len(empty["delays_frames"]) == 2 and len(beside["delays_frames"]) == 4  # one per phase
    assert empty["never"] == beside["never"] == 0 and 0 < empty["mean_s"] <= empty["worst_s"]
    assert beside["worst_s"] > empty["worst_s"]  # newcomers beside someone wait for the rarer pass
    still = regions.motion(settings, 0, 8.0, seconds=1.5)
    assert still["tracks"] == 1 and still["followed"] == 1.0


def test_versus_fer_says_how_to_get_fer_when_its_environment_is_missing(monkeypatch, tmp_path):
    """fer runs in its own environment (`make fer-venv`); without it the suite stops with one line saying so."""
    from bench import versus_fer
    from service.config import SAMPLE_CLIP

    monkeypatch.setattr(versus_fer, "FER_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    with pytest.raises(SystemExit, match="make fer-venv"):
        versus_fer.fer_times(SAMPLE_CLIP, repeats=1)
