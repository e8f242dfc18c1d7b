"""models/registry.py, models/__init__.py and models/summary.py: registration, the factory, configs as data,
bundle_cfg, the torch-free package import, the summary CLI."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from models import registry
from models.registry import create_model, list_models, load_config, register_model
from models.summary import main as summary_main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made inside a test vanish after it."""
    monkeypatch.setattr(registry, "_entrypoints", dict(registry._entrypoints))


def test_builtin_models_are_listed():
    assert {"duse", "ous"} <= set(list_models())
    assert list_models("du*") == ["duse"]


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(KeyError, match="duse"):
        create_model("dusee")


def test_a_model_without_a_clip_backbone_registers(scratch_registry):
    received = {}

    @register_model(name="frame_average_test")
    def frame_average(num_classes: int = 7, **kwargs):
        received.update(kwargs, num_classes=num_classes)
        return torch.nn.Linear(4, num_classes)

    model = create_model("frame_average_test", num_classes=3)
    assert isinstance(model, torch.nn.Linear) and model.out_features == 3
    assert received == {"num_classes": 3}  # backbone and checkpoint are not passed when not given
    assert "frame_average_test" in list_models()


def test_registering_twice_warns(scratch_registry):
    @register_model(name="twice_test")
    def first():
        return "first"

    with pytest.warns(UserWarning, match="twice_test"):
        @register_model(name="twice_test")
        def second():
            return "second"

    assert create_model("twice_test") == "second"


def test_configs_hold_the_papers_values():
    duse_l = load_config("duse")
    assert duse_l == {"backbone": "ViT-L-14", "num_tokens": 4, "prompt_depth": "normal", "heads": 4, "beta": 0.7,
                      "num_frames": 16}
    assert load_config("duse", "ViT-B-16")["prompt_depth"] == "deep"
    ous = load_config("ous")
    assert (ous["backbone"], ous["prompt_length"], ous["tfe_blocks"], ous["polarity_layers"]) == ("ViT-L-14", 64, 12, 4)


def test_keyword_arguments_override_the_config():
    model = create_model("duse", backbone="tiny", beta=0.5, heads=2, num_classes=11)
    assert model.lsea.semantic.beta == 0.5 and model.lsea.semantic.heads == 2
    assert model.bundle_cfg["dataset"] == "mafw" and len(model.labels) == 11


@pytest.mark.parametrize("name, needs_scene", [("duse", False), ("ous", True)])
def test_bundle_cfg(name, needs_scene):
    cfg = create_model(name, backbone="tiny", dataset="ferv39k", tfe_blocks=1).bundle_cfg if name == "ous" else \
        create_model(name, backbone="tiny", dataset="ferv39k").bundle_cfg
    assert cfg["name"] == f"{name}-tiny-ferv39k" and cfg["method"] == name and cfg["backbone"] == "tiny"
    assert cfg["labels"] == ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
    assert (cfg["num_frames"], cfg["image_size"], cfg["channels"]) == (16, 64, 3)
    assert cfg["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert cfg["std"] == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    assert cfg["needs_scene"] is needs_scene
    assert cfg["inputs"] == (["faces", "scene"] if needs_scene else ["faces"])
    json.dumps(cfg)  # goes into bundle.json as it is


def test_importing_models_does_not_import_torch():
    code = "import sys, models; assert 'torch' not in sys.modules; print(sorted(models.__all__))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['create_model', 'list_models', 'register_model']"


def test_package_exports_the_factory():
    import models

    assert models.create_model is create_model and models.list_models is list_models
    with pytest.raises(AttributeError):
        models.not_there  # noqa: B018


@pytest.mark.parametrize("name", ["duse", "ous"])
def test_summary_json(capsys, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert summary_main([name, "--backbone", "tiny", "--frames", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = create_model(name, backbone="tiny")
    assert result["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert result["total_params"] == sum(p.numel() for p in model.parameters())
    assert 0 < result["trainable_params"] < result["total_params"]
    assert result["gflops_per_window"] > 0 and result["num_frames"] == 4 and result["weights"] == "random"
