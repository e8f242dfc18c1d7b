"""`python -m export per-frame`: graphs in each layout (random weights, tests/per_frame_graphs.py) through the
converter, the engine, the service's emotion stage and a clip; the model's own valence/arousal (va_source "model")
in events and clip reports (ROS expressions: tests/ros/test_model_valence_arousal.py); refusals of files that do not fit; licences and the research warning."""

import json

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")

from export.__main__ import main as export_main  # noqa: E402
from export.per_frame import LAYOUTS, LayoutMismatch, convert_per_frame, custom_layout, reference_outputs  # noqa: E402
from export.real_inputs import real_photo_crops  # noqa: E402
from service.bundle import ModelBundle  # noqa: E402
from service.config import SAMPLE_CLIP, Settings  # noqa: E402
from service.inference import OnnxEngine, softmax  # noqa: E402
from tests.per_frame_graphs import ferplus_graph, hsemotion_graph  # noqa: E402


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    return {"hsemotion": hsemotion_graph(root / "enet_b0_8_va_mtl.onnx"),
            "hsemotion8": hsemotion_graph(root / "enet_b2_8.onnx", size=260, outputs=8),
            "ferplus": ferplus_graph(root / "emotion-ferplus-8.onnx"),
            "nine": hsemotion_graph(root / "nine.onnx", outputs=9)}


@pytest.fixture(scope="module")
def bundles(graphs, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    warnings = []
    made = {"hsemotion": convert_per_frame(graphs["hsemotion"], LAYOUTS["hsemotion"], root / "hs", SAMPLE_CLIP,
                                           warn=warnings.append),
            "ferplus": convert_per_frame(graphs["ferplus"], LAYOUTS["ferplus"], root / "fp", SAMPLE_CLIP,
                                         warn=warnings.append)}
    return made, warnings


def test_hsemotion_va_mtl_becomes_a_bundle_with_its_own_valence_arousal(bundles):
    made, warnings = bundles
    spec = made["hsemotion"].spec
    assert spec.method == "baseline" and spec.image_size == 224 and spec.channels == 3
    assert spec.labels == ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert spec.source_labels[:2] == ["Anger", "Contempt"]  # contempt kept as its own label
    assert spec.mean == pytest.approx([0.485, 0.456, 0.406]) and spec.std == pytest.approx([0.229, 0.224, 0.225])
    assert spec.valence_arousal == "valence_arousal" and spec.frame_cache.feature_dim == 10
    assert set(spec.parity) == {"real", "real_frame_cache", "real_valence_arousal"}
    assert max(spec.parity.values()) < 1e-4
    assert spec.trained_on.research_only and "AffectNet" in spec.trained_on.license
    assert "sha256" in spec.trained_on.source and "enet_b0_8_va_mtl.onnx" in spec.trained_on.source
    assert len(warnings) == 1 and "research" in warnings[0]  # only HSEmotion's layout warns


def test_ferplus_fixed_batch_opset8_graph_runs_frame_by_frame(bundles, graphs):
    spec = bundles[0]["ferplus"].spec
    assert spec.labels == ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    assert spec.channels == 1 and spec.image_size == 64 and spec.valence_arousal is None
    assert spec.opset == 8 and spec.std == pytest.approx([1 / 255])  # raw 0..255 pixels, as the Model Zoo feeds it
    assert not spec.trained_on.research_only and spec.trained_on.license.startswith("MIT")
    # the Loop over frames: a window of 16 different crops gives the mean of 16 separate runs of the original
    crops = np.stack(real_photo_crops(64, 1)[:16])
    reference = reference_outputs(graphs["ferplus"], _facts(graphs["ferplus"], "ferplus"), LAYOUTS["ferplus"], crops)
    probs = OnnxEngine(bundles[0]["ferplus"]).predict(crops[None])
    assert np.abs(probs[0] - softmax(reference.mean(0, keepdims=True))[0]).max() < 1e-5
    assert probs.max() > 0.3  # not a uniform output that would match anything


def _facts(path, layout):
    from export.per_frame import inspect_graph

    return inspect_graph(onnx.load(str(path)), path, LAYOUTS[layout])


def test_parity_is_measured_on_distinct_real_faces(bundles, graphs):
    """The converter's reference: the original file under the authors' preprocessing; its outputs differ from face
    to face (so the parity check is not comparing constants)."""
    crops = np.stack(real_photo_crops(224, 3))
    reference = reference_outputs(graphs["hsemotion"], _facts(graphs["hsemotion"], "hsemotion"),
                                  LAYOUTS["hsemotion"], crops)
    assert reference.shape == (len(crops), 10) and reference[:, :8].argmax(1).tolist().count(
        reference[0, :8].argmax()) < len(crops)
    engine = OnnxEngine(bundles[0]["hsemotion"])
    probs, va = engine.predict_va(np.repeat(crops[:, None], 16, axis=1))
    assert np.abs(probs - softmax(reference[:, :8])).max() < 1e-4
    assert np.abs(va - reference[:, 8:]).max() < 1e-4


@pytest.mark.parametrize("graph, layout, message", [
    ("ferplus", "hsemotion", "input 'Input3' has 1 channels"),
    ("hsemotion", "ferplus", "input 'input' has 3 channels"),
    ("nine", "hsemotion", "gives 9 values per face"),
])
def test_a_file_that_does_not_fit_is_refused_in_one_line(graphs, tmp_path, graph, layout, message):
    with pytest.raises(LayoutMismatch, match=message) as caught:
        convert_per_frame(graphs[graph], LAYOUTS[layout], tmp_path / "b", SAMPLE_CLIP)
    assert "\n" not in str(caught.value) and f"does not fit layout {layout}" in str(caught.value)
    assert not (tmp_path / "b").exists()


def test_a_260px_hsemotion_file_takes_its_size_from_the_graph(graphs, tmp_path):
    spec = convert_per_frame(graphs["hsemotion8"], LAYOUTS["hsemotion"], tmp_path / "b2", SAMPLE_CLIP).spec
    assert spec.image_size == 260 and len(spec.labels) == 8 and spec.valence_arousal is None
    with pytest.raises(LayoutMismatch, match="--size says 224"):
        convert_per_frame(graphs["hsemotion8"], LAYOUTS["hsemotion"], tmp_path / "b3", SAMPLE_CLIP, size=224)


def test_custom_layout_bgr_from_flags(graphs, tmp_path):
    """A model fed BGR with its own normalisation: the bundle flips the channels inside its graph, and parity holds
    against the original fed as its flags say."""
    layout = custom_layout(224, "bgr", 255.0, [104.0, 117.0, 123.0], [58.0, 57.0, 57.0],
                           ["a", "b", "Happiness", "Sadness", "d", "e", "f", "g"], valence_arousal=True)
    bundle = convert_per_frame(graphs["hsemotion"], layout, tmp_path / "custom", SAMPLE_CLIP, name="mine")
    spec = bundle.spec
    assert spec.name == "mine" and spec.labels[2:4] == ["happy", "sad"] and spec.valence_arousal
    assert spec.mean == pytest.approx([123 / 255, 117 / 255, 104 / 255])  # stated in RGB order, on [0, 1]
    assert spec.trained_on.licence == "unknown" and spec.trained_on.source.startswith("unknown")
    assert max(spec.parity.values()) < 1e-4


def test_cli_writes_a_bundle_and_refuses_with_exit_2(graphs, tmp_path, capsys):
    assert export_main(["per-frame", str(graphs["hsemotion"]), "--layout", "hsemotion", "--out",
                        str(tmp_path / "cli")]) == 0
    captured = capsys.readouterr()
    assert "warning: HSEmotion's weights were trained on AffectNet" in captured.err
    assert "valence/arousal from the model" in captured.out and "licence: Apache-2.0" in captured.out
    assert export_main(["per-frame", str(graphs["ferplus"]), "--layout", "hsemotion", "--out",
                        str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: emotion-ferplus-8.onnx does not fit layout hsemotion") and "\n" not in err
    assert export_main(["per-frame", str(graphs["ferplus"]), "--layout", "custom", "--out", str(tmp_path / "c")]) == 2
    assert "--layout custom needs --labels" in capsys.readouterr().err


def test_the_service_reads_the_models_valence_arousal_in_events_and_clip_reports(bundles, astronaut_clip):
    from service.analyze import analyze_clip
    from service.detect import create_detector

    bundle = bundles[0]["hsemotion"]
    settings = Settings(_env_file=None, model=bundle.directory)
    engine = OnnxEngine(bundle)
    report = analyze_clip(astronaut_clip, settings, engine, create_detector(settings))
    events = [e for e in report.events if e.type == "emotion"]
    assert events and all(e.va_source == "model" for e in events)
    assert all(-1 <= e.valence <= 1 and -1 <= e.arousal <= 1 for e in events)
    assert len({e.valence for e in events}) > 1  # the model's, window by window, not a table's constant
    dumped = [e for e in json.loads(report.model_dump_json())["events"] if e["type"] == "emotion"]
    assert {e["va_source"] for e in dumped} == {"model"}


def test_old_bundles_without_the_new_fields_still_load():
    from service.config import FER_BUNDLE

    spec = ModelBundle.load(FER_BUNDLE).spec
    assert spec.valence_arousal is None and spec.calibration is None and spec.temperature == 1.0
    assert spec.trained_on.licence.startswith("MIT")
