"""models/clip_guided.py on the tiny backbone: shapes, Inter-FIT, MSTA and BiEhPro as the paper describes them, what
trains, overfitting, ONNX parity. Windows are the paper's T = 8 frames (MSTA's largest kernel is 7 frames)."""

import pytest
import torch
import torch.nn.functional as F

from models.clip_guided import MSTA, BiEhPro
from models.registry import create_model
from tests.models.checks import assert_gradients_reach_exactly_the_trainable, onnx_parity, overfit, trainable_names

FRAMES = 8


@pytest.fixture
def model():
    return create_model("clip_guided", backbone="tiny", num_frames=FRAMES)


@pytest.fixture
def clip8():
    return torch.randn(2, FRAMES, 3, 64, 64)


def test_paper_defaults(model):
    assert len(model.biehpro.blocks) == 2  # M = 2 (sec. 4.1, Table 4)
    assert model.msta.kernels == (5, 5, 7) and model.msta.strides == (3, 3, 1)  # eq. 4
    assert len(model.interfit.lstm) == model.backbone.visual_layers  # an Inter-FIT layer per encoder layer
    assert model.interfit.lstm[0].bidirectional
    assert create_model("clip_guided", backbone="tiny").bundle_cfg["num_frames"] == 16  # the service's window


@pytest.mark.parametrize("dataset, classes", [("dfew", 7), ("mafw", 11)])
def test_logits_shape(clip8, dataset, classes):
    model = create_model("clip_guided", backbone="tiny", num_frames=FRAMES, dataset=dataset).eval()
    with torch.no_grad():
        logits = model(clip8)
    assert logits.shape == (2, classes) and torch.isfinite(logits).all()
    assert model.bundle_cfg["method"] == "clip_guided" and model.bundle_cfg["labels"] == list(model.labels)


def test_window_length_is_checked(model):
    with pytest.raises(ValueError, match="8-frame"):
        model(torch.randn(1, 4, 3, 64, 64))


def test_trainable_set_is_image_encoder_and_new_modules(model):
    names = trainable_names(model)
    assert {n.split(".")[0] for n in names} == {"backbone", "interfit", "msta", "biehpro"}
    visual = {f"backbone.{n}" for n, _ in model.backbone.parameter_groups()["visual"]}
    assert {n for n in names if n.startswith("backbone.")} == visual  # fine-tuned image encoder (sec. 4.1)
    frozen = {n for n, p in model.backbone.named_parameters() if not p.requires_grad}
    assert frozen == {n for group in ("text", "logit_scale") for n, _ in model.backbone.parameter_groups()[group]}
    assert {"biehpro.alpha", "biehpro.beta"} <= names


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(model, clip8):
    assert_gradients_reach_exactly_the_trainable(model, model.loss(clip8, torch.tensor([1, 5])).total)


def test_interaction_tokens_exchange_information_between_frames(model, clip8):
    model.eval()
    changed = clip8.clone()
    changed[:, 5] = torch.randn_like(changed[:, 5])
    with torch.no_grad():
        before, after = model.frame_features(clip8), model.frame_features(changed)
        plain = model.backbone.encode_image(clip8[0]).features
    assert not torch.allclose(before[:, 0], after[:, 0], atol=1e-5)  # frame 0 hears about frame 5
    assert not torch.allclose(before[0], plain, atol=1e-4)  # so it is not plain per-frame CLIP


def test_msta_scales_match_the_paper_at_eight_frames():
    msta = MSTA(16, num_frames=8)
    assert msta.lengths == (2, 2, 2) and msta.out_len == 2  # every scale is T/3 long (floor)
    assert MSTA(16, num_frames=16).lengths == (4, 4, 10)
    with pytest.raises(ValueError):
        MSTA(16, num_frames=6)


def test_msta_computes_eqs_4_to_8():
    torch.manual_seed(0)
    msta = MSTA(8, num_frames=16)
    frames = torch.randn(3, 16, 8)
    z = frames.transpose(1, 2)
    scales = [F.max_pool1d(z, 5, 3), F.max_pool1d(z, 5, 3), F.adaptive_max_pool1d(F.max_pool1d(z, 7, 1), 4)]
    for got, want in zip(msta.scales(frames), scales):
        assert torch.allclose(got, want)
    fused = sum(scales)
    u = torch.stack([fc(fused.transpose(1, 2)).transpose(1, 2) for fc in msta.fc])
    weighted = (u.softmax(dim=0) * torch.stack(scales)).sum(dim=0)
    assert torch.allclose(msta(frames), msta.fc_v(weighted.flatten(1)), atol=1e-6)


def test_biehpro_adds_weighted_prompts():
    torch.manual_seed(0)
    bi = BiEhPro(16, blocks=2, heads=2, alpha=0.0, beta=0.0)
    text, video = torch.randn(7, 16), torch.randn(3, 16)
    k, v = bi(text, video)
    assert k.shape == (3, 7, 16) and torch.allclose(k, text.expand(3, -1, -1)) and torch.allclose(v, video)
    bi.alpha.data.fill_(0.5)
    k, _ = bi(text, video)
    assert not torch.allclose(k[0], k[1])  # the text prompts depend on the video of each sample


def test_overfits_a_tiny_batch(model):
    inputs = {"faces": torch.randn(4, FRAMES, 3, 64, 64)}
    labels = torch.tensor([0, 1, 2, 3])
    first, last = overfit(model, inputs, labels, steps=12, lr=1e-3)
    assert last < 0.2 * first
    with torch.no_grad():
        assert torch.equal(model(inputs["faces"]).argmax(dim=1), labels)


def test_onnx_matches_pytorch(model, clip8):
    diff = onnx_parity(model, {"faces": clip8}, {"faces": torch.randn(3, FRAMES, 3, 64, 64)})
    assert diff < 1e-4
