"""Reloading reproduces the model as trained: the activation a CLIP file needs is settled from what the file is
(OpenAI's released files by sha256, open_clip's pretrained tag, or an explicit flag; never from its name), saved in
the checkpoint, and `load_model` recomputes the checkpoint's fingerprint and refuses a rebuild that differs."""

import pytest
import torch

from models import clip_weights
from models.backbone import create_backbone, tiny_clip
from models.checkpoint import CheckpointError, load_model, save_checkpoint
from models.clip_weights import ActivationUnknownError, tag_quick_gelu
from models.recipes import load_recipe
from models.training import build_training


def trained(quick_gelu: bool):
    torch.manual_seed(0)
    return build_training("pe_clip", load_recipe("pe_clip", "dfew"), backbone="tiny", image_size=32,
                          quick_gelu=quick_gelu)


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_the_activation_survives_a_reload_and_a_rebuild_with_the_other_is_refused_by_name(tmp_path, quick_gelu):
    training = trained(quick_gelu)
    assert training.factory["quick_gelu"] is quick_gelu and "checkpoint" not in training.factory
    path = save_checkpoint(tmp_path / "best.pt", training.model, name="pe_clip", factory=training.factory,
                           training={})
    model, meta = load_model(path)
    assert model.backbone.quick_gelu is quick_gelu
    assert meta["build"]["activation"] == ("quick_gelu" if quick_gelu else "gelu")
    window = torch.randn(1, 16, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(window), training.model.eval()(window))

    payload = torch.load(path, weights_only=False)
    payload["factory"]["quick_gelu"] = not quick_gelu  # what the old loader did: rebuilt without the activation
    torch.save(payload, tmp_path / "rebuilt.pt")
    with pytest.raises(CheckpointError, match="not the model as trained.*activation: '(quick_)?gelu' at training"):
        load_model(tmp_path / "rebuilt.pt")


def test_a_config_default_that_changed_since_training_is_named(tmp_path, monkeypatch):
    torch.manual_seed(0)
    training = build_training("duse", load_recipe("duse", "dfew"), backbone="tiny", image_size=32)
    path = save_checkpoint(tmp_path / "best.pt", training.model, name="duse", factory=training.factory,
                           training={})
    from models import registry

    real = registry.load_config
    monkeypatch.setattr(registry, "load_config", lambda *a: real(*a) | {"beta": 0.2})  # DuSE's eq. 13 mix
    with pytest.raises(CheckpointError, match="config.beta: 0.7 at training, 0.2 now"):
        load_model(path)


@pytest.fixture
def clip_file(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_clip().state_dict(), path)
    return path


def test_a_clip_file_of_unknown_origin_needs_the_activation_named(clip_file, monkeypatch, capsys):
    with pytest.raises(ActivationUnknownError, match="--quick-gelu.*--no-quick-gelu"):
        create_backbone("tiny", clip_file)
    assert create_backbone("tiny", clip_file, quick_gelu=False).quick_gelu is False
    assert create_backbone("tiny", clip_file, quick_gelu=True).activation.reason == "chosen explicitly"

    from models.summary import main as summary

    assert summary(["dfer_clip", "--backbone", "tiny"]) == 0  # random weights: nothing to guess
    capsys.readouterr()
    assert summary(["pe_clip", "--backbone", "tiny", "--checkpoint", str(clip_file)]) == 2
    assert "cannot tell which activation" in capsys.readouterr().err
    assert summary(["pe_clip", "--backbone", "tiny", "--checkpoint", str(clip_file), "--no-quick-gelu"]) == 0


def test_openais_released_files_are_recognised_by_sha256(clip_file, monkeypatch):
    import open_clip

    from service.bundle import file_sha256

    # the table holds the sha256s in the paths of OpenAI's download URLs as open_clip lists them
    for sha, name in clip_weights.OPENAI_SHA256.items():
        assert f"/clip/models/{sha}/" in open_clip.get_pretrained_url(name, "openai")
    monkeypatch.setitem(clip_weights.OPENAI_SHA256, file_sha256(clip_file), "tiny")  # stand-in for a released file
    backbone = create_backbone("tiny", clip_file)
    assert backbone.quick_gelu and "OpenAI's released tiny file" in backbone.activation.reason
    monkeypatch.setitem(clip_weights.OPENAI_SHA256, file_sha256(clip_file), "ViT-B-16")
    with pytest.raises(ActivationUnknownError, match="OpenAI's ViT-B-16 CLIP file, not a tiny"):
        create_backbone("tiny", clip_file)


def test_open_clip_tags_say_the_activation():
    assert tag_quick_gelu("ViT-B-32", "openai") and not tag_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    with pytest.raises(ActivationUnknownError, match="no pretrained tag 'webli'"):
        tag_quick_gelu("ViT-B-16", "webli")


def test_models_train_stops_with_exit_code_2_and_the_reason(clip_file, tmp_path, capsys):
    from models.training.cli import main

    code = main(["--model", "pe_clip", "--backbone", "tiny", "--dataset", "ferv39k", "--data", str(tmp_path),
                 "--out", str(tmp_path / "run"), "--clip-checkpoint", str(clip_file), "--device", "cpu"])
    assert code == 2 and "cannot tell which activation" in capsys.readouterr().err
