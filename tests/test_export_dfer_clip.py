"""`python -m export dfer-clip`: DFER-CLIP's released checkpoints (synthetic ones in exactly their layout, random
weights) to bundles that reproduce the released model; tampered files refused without running anything; a MAFW
11-class bundle served end to end."""

import os

import numpy as np
import pytest
import torch

from export.dfer_clip_release import PAPER_RESULTS, convert_release, fold_from_name
from export.from_checkpoint import export_checkpoint
from models.checkpoint import CheckpointError, save_checkpoint
from models.text import DFER_CLIP_RELEASE_LABELS
from service.bundle import ModelBundle
from service.inference import OnnxEngine
from tests.released_dfer_clip import reference_probabilities, released_payload, released_state, save_released


def random_windows(size: int, seed: int = 0, batch: int = 1) -> np.ndarray:
    """uint8 face windows as the service feeds them: [B, 16, H, W, 3]."""
    return np.random.default_rng(seed).integers(0, 256, (batch, 16, size, size, 3), dtype=np.uint8)


# ---- a full-size (ViT-B/32) released file ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    out = tmp_path_factory.mktemp("dfer_clip_full")
    state = released_state("dfew", "ViT-B-32")
    path = save_released(out / "DFEW-2307121510-set2-model_best.pth", released_payload(state))
    return state, path


def test_full_size_release_converts_to_a_bundle_that_reproduces_the_released_model(full_size, tmp_path):
    """The ViT-B/32 file (OpenAI names, QuickGELU, 17 temporal positions, 8 context tokens per class) loads through
    the weights-only unpickler onto dfer_clip, and both that model and its ONNX bundle (run by the service's engine
    on uint8 windows) match a forward pass written from the released code on the same window scaled to [0, 1]."""
    from export.from_checkpoint import export_trained_model

    state, path = full_size
    model, info = convert_release(path, "dfew")
    assert model.backbone.name == "ViT-B-32" and (info.dataset, info.fold) == ("dfew", 2)
    windows = random_windows(224)
    faces = torch.from_numpy(windows).permute(0, 1, 4, 2, 3).float() / 255
    with torch.no_grad():
        probs = model(faces).softmax(-1)
    expected = reference_probabilities(state, "dfew", faces)
    assert (probs - expected).abs().max() < 1e-3
    assert expected.max() - expected.min() > 0.05  # a window the classes disagree on: not a vacuous comparison
    # real_clip=None: the parity check on the sample clip's faces is the tiny bundle's test; this one is about size
    bundle = export_trained_model(model, info, tmp_path / "bundle", real_clip=None)
    assert (bundle.spec.image_size, bundle.spec.num_frames, bundle.spec.backbone) == (224, 16, "ViT-B-32")
    assert np.abs(OnnxEngine(bundle).predict(windows) - expected.numpy()).max() < 1e-3


def test_cli_refuses_a_file_of_another_architecture(tmp_path, capsys):
    """A tiny file in the released layout is not a ViT-B/32 (4 layers, not 12): refused naming the missing layers,
    exit code 2, nothing written."""
    from export.__main__ import main

    path = save_released(tmp_path / "tiny.pth", released_payload(released_state("dfew", "tiny")))
    assert main(["dfer-clip", str(path), "--dataset", "dfew", "--out", str(tmp_path / "bundle")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "released layout: missing" in err and "resblocks.10." in err
    assert not (tmp_path / "bundle").exists()


# ---- tiny files in the released layout -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_mafw(tmp_path_factory):
    """A MAFW file in the released layout at tiny size, through `python -m export dfer-clip` (in process, with the
    released architecture swapped for the tiny one)."""
    from export import dfer_clip_release
    from export.__main__ import main

    out = tmp_path_factory.mktemp("dfer_clip_tiny")
    state = released_state("mafw", "tiny")
    path = save_released(out / "MAFW-set4-model_best.pth", released_payload(state))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dfer_clip_release, "RELEASED_BACKBONE", "tiny")
        assert main(["dfer-clip", str(path), "--dataset", "mafw", "--out", str(out / "bundle")]) == 0
        model, _ = convert_release(path, "mafw")
    return state, path, model, ModelBundle.load(out / "bundle")


def test_cli_writes_a_standard_bundle_with_provenance(tiny_mafw):
    _, path, _, bundle = tiny_mafw
    spec = bundle.spec
    assert (spec.method, spec.backbone, spec.name) == ("dfer_clip", "tiny", "dfer_clip-tiny-mafw")
    assert (spec.num_frames, spec.image_size, spec.channels) == (16, 64, 3)
    assert spec.mean == [0.0, 0.0, 0.0] and spec.std == [1.0, 1.0, 1.0]  # the service feeds x / 255, as trained
    assert spec.text_features == "baked" and spec.frame_cache is not None
    assert spec.parity["random"] < 1e-4 and spec.parity["real"] < 1e-4  # real: the sample clip's face windows
    trained = spec.trained_on
    assert (trained.dataset, trained.fold) == ("mafw", 4)
    assert (trained.uar, trained.war) == (0.3989, 0.5255)  # the paper's MAFW 5-fold means
    from service.bundle import file_sha256

    assert file_sha256(path) in trained.source and "github.com/zengqunzhao/DFER-CLIP" in trained.source
    assert "MIT" in trained.license


def test_bundle_reproduces_the_released_model(tiny_mafw):
    """The bundle, run by the service's engine on uint8 windows, against a forward pass written from the released
    code (tests/released_dfer_clip.py) on the same windows scaled to [0, 1]."""
    state, _, _, bundle = tiny_mafw
    windows = random_windows(64, batch=2)
    probs = OnnxEngine(bundle).predict(windows)
    faces = torch.from_numpy(windows).permute(0, 1, 4, 2, 3).float() / 255
    expected = reference_probabilities(state, "mafw", faces, architecture="tiny").numpy()
    assert probs.shape == (2, 11) and np.abs(probs - expected).max() < 1e-3
    assert (expected.max(1) - expected.min(1)).min() > 0.05


def test_mafw_conversion_keeps_the_released_class_order(tiny_mafw):
    state, _, model, bundle = tiny_mafw
    assert tuple(bundle.spec.labels) == DFER_CLIP_RELEASE_LABELS["mafw"] == (
        "happy", "sad", "neutral", "angry", "surprise", "disgust", "fear",
        "contempt", "anxiety", "helplessness", "disappointment")
    assert tuple(round(v / 100, 4) for v in PAPER_RESULTS["mafw"]) == (0.3989, 0.5255)
    assert torch.equal(model.class_context, state["module.prompt_learner.ctx"])
    assert torch.equal(model.temporal_net.blocks[0].mlp[2].weight,
                       state["module.temporal_net.temporal_transformer.layers.0.1.fn.fn.net.3.weight"])


def test_same_bundle_as_a_models_train_checkpoint(tiny_mafw, tmp_path):
    """The converted model saved as models.train saves a dfer_clip, exported by `python -m export CHECKPOINT`,
    gives the same bundle: same spec (but provenance), same outputs."""
    _, _, model, converted = tiny_mafw
    factory = {"dataset": "mafw", "backbone": "tiny", "labels": list(model.labels)}
    checkpoint = save_checkpoint(tmp_path / "best.pt", model, name="dfer_clip", factory=factory,
                                 training={"dataset": "mafw", "fold": 4, "epoch": 1})
    trained = export_checkpoint(checkpoint, tmp_path / "bundle")
    skip = {"trained_on", "sha256", "parity", "frame_cache"}
    assert trained.spec.model_dump(exclude=skip) == converted.spec.model_dump(exclude=skip)
    windows = random_windows(64, batch=2)
    assert np.allclose(OnnxEngine(trained).predict(windows), OnnxEngine(converted).predict(windows), atol=1e-6)


def _tampered(tmp_path, change, dataset="dfew"):
    state = released_state(dataset, "tiny")
    payload = released_payload(state)
    change(payload, payload["state_dict"])
    return save_released(tmp_path / "DFEW-set1-model_best.pth", payload)


def _other_text_type(payload, state):  # e.g. --text-type class_names: other words after the context
    state["module.prompt_learner.token_suffix"] = state["module.prompt_learner.token_suffix"].roll(1, dims=1)


def _edited_duplicate(payload, state):
    state["module.image_encoder.proj"] = state["module.image_encoder.proj"] + 1.0  # clip_model_.visual.proj not


@pytest.mark.parametrize("change, words", [
    (lambda p, s: s.__setitem__("module.extra.weight", torch.zeros(3)), ["unexpected extra.weight"]),
    (lambda p, s: s.pop("module.temporal_net.cls_token"), ["missing temporal_net.cls_token"]),
    (lambda p, s: s.__setitem__("module.image_encoder.proj", torch.zeros(64, 32)),
     ["wrong shape", "image_encoder.proj (64, 32) (expected (64, 64))"]),
    (lambda p, s: s.__setitem__("module.prompt_learner.ctx", torch.zeros(8, 64)),  # a generic context
     ["prompt_learner.ctx (8, 64) (expected (7, 8, 64))"]),
    (_other_text_type, ["token_suffix", "class descriptors"]),
    (_edited_duplicate, ["image_encoder.proj and its duplicate clip_model_.visual.proj differ"]),
    (lambda p, s: p.pop("state_dict") and p.__setitem__("model", {}), ["not a DFER-CLIP checkpoint"]),
], ids=["extra-key", "missing-key", "wrong-shape", "generic-context", "other-prompts", "edited-duplicate",
        "no-state-dict"])
def test_tampered_files_are_refused_by_name(tmp_path, change, words):
    path = _tampered(tmp_path, change)
    with pytest.raises(CheckpointError) as error:
        convert_release(path, "dfew", backbone="tiny")
    assert all(w in str(error.value) for w in words), str(error.value)


def test_a_file_for_another_dataset_is_refused(tmp_path):
    path = save_released(tmp_path / "m.pth", released_payload(released_state("mafw", "tiny")))
    with pytest.raises(CheckpointError, match=r"prompt_learner.ctx \(11, 8, 64\) \(expected \(7, 8, 64\)\)"):
        convert_release(path, "dfew", backbone="tiny")


class _Payload:
    """Pickles as a call of os.system: what a malicious checkpoint carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["recorder", "state_dict"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, where):
    marker = tmp_path / "payload-ran"

    def plant(payload, state):
        if where == "recorder":
            payload["recorder"] = _Payload(marker)
        else:
            state["module.temporal_net.cls_token"] = _Payload(marker)

    path = _tampered(tmp_path, plant)
    with pytest.raises(CheckpointError, match=r"carries posix\.system.*refusing to unpickle"):
        convert_release(path, "dfew", backbone="tiny")
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        convert_release(junk, "dfew", backbone="tiny")
    with pytest.raises(CheckpointError, match="not found"):
        convert_release(tmp_path / "absent.pth", "dfew", backbone="tiny")
    with pytest.raises(ValueError, match="unknown dataset"):
        convert_release(junk, "affectnet", backbone="tiny")


@pytest.mark.parametrize("name, fold", [("DFEW-2307121510-set3-model_best.pth", 3), ("MAFW_fold5.pth", 5),
                                        ("FER39K-2307121510-model_best.pth", None), ("model.pth", None)])
def test_fold_from_the_file_name(name, fold):
    from pathlib import Path

    assert fold_from_name(Path(name)) == fold


# ---- a MAFW 11-class bundle, served ---------------------------------------------------------------------------------

def test_mafw_bundle_serves_clips_and_live_events(tiny_mafw, astronaut_clip, tmp_path):
    """/v1/models, a clip analysis through the client, live smoothed state, prompts and the plot, with 11 labels."""
    from client.emotion_client import EmotionClient
    from service.api import create_app
    from service.config import Settings
    from service.report import ClipReport, plot_timeline
    from tests.server import running_server, wait_for

    bundle = tiny_mafw[3]
    labels = list(DFER_CLIP_RELEASE_LABELS["mafw"])
    settings = Settings(_env_file=None, model=bundle.directory, heartbeat_s=0.25)
    app = create_app(settings, sources=[f"face={astronaut_clip}"])
    with running_server(app) as base, EmotionClient(base) as client:
        models = client.models()
        assert models["models"][0]["labels"] == labels and models["models"][0]["method"] == "dfer_clip"
        report = client.analyze(astronaut_clip)
        emotions = [e for e in report["events"] if e["type"] == "emotion"]
        assert emotions and all(list(e["probs"]) == labels and e["label"] in labels for e in emotions)
        assert all(e["prompt"].startswith("The person in front of you") for e in emotions)

        def live_track():
            tracks = client.state()["sources"]["face"]["tracks"]
            return next((t for t in tracks if t["label"] is not None), None)

        track = wait_for(live_track, timeout=120)
        assert list(track["probs"]) == labels and track["label"] in labels
    plot = plot_timeline(ClipReport.model_validate(report), tmp_path / "mafw.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("label, adjective", [("contempt", "contemptuous"), ("anxiety", "anxious"),
                                              ("helplessness", "helpless"), ("disappointment", "disappointed")])
def test_mafw_compound_classes_have_prompt_wording(label, adjective):
    from service.prompts import emotion_prompt

    assert f"looked {adjective} " in emotion_prompt(label, 0.9, 2.0)
