"""models/ous.py on the tiny backbone: shapes, the scene input, streams, polarity, TFE, the loss switch, what
trains, overfitting, ONNX parity."""

import pytest
import torch

from models.backbone import TowerHooks
from models.ous import TypeFusionEncoder
from models.registry import create_model
from models.text import DATASET_LABELS
from tests.models.checks import assert_gradients_reach_exactly_the_trainable, onnx_parity, overfit, trainable_names


@pytest.fixture
def ous():
    return create_model("ous", backbone="tiny")


def test_paper_defaults(ous):
    assert ous.prompt_context.shape[0] == 64  # prompt length M = 64 (Tables III, VI)
    assert len(ous.tfe.blocks) == 12  # TFE blocks (Table III)
    assert ous.polarity_layer == 3  # output of the first four encoder blocks
    assert ous.bundle_cfg["needs_scene"] is True and ous.bundle_cfg["inputs"] == ["faces", "scene"]


@pytest.mark.parametrize("dataset, classes", [("dfew", 7), ("ferv39k", 7), ("mafw", 11)])
def test_logits_shape(window, scene_window, dataset, classes):
    model = create_model("ous", backbone="tiny", dataset=dataset, tfe_blocks=2).eval()
    with torch.no_grad():
        logits = model(window, scene_window)
    assert logits.shape == (window.shape[0], classes) and torch.isfinite(logits).all()


def test_scene_is_required_and_used(ous, window, scene_window):
    ous.eval()
    with pytest.raises(ValueError, match="scene"):
        ous(window)
    with torch.no_grad():
        assert not torch.allclose(ous(window, scene_window), ous(window, scene_window.flip(0)), atol=1e-4)


def test_polarity_targets_per_dataset():
    expected = {  # 0 positive, 1 neutral, 2 negative
        "dfew": [0, 2, 1, 2, 0, 2, 2],
        "ferv39k": [0, 2, 1, 2, 0, 2, 2],
        "mafw": [2, 2, 2, 0, 1, 2, 0, 2, 2, 2, 2],
    }
    for dataset, polarity in expected.items():
        model = create_model("ous", backbone="tiny", dataset=dataset, tfe_blocks=1)
        assert model.class_polarity.tolist() == polarity, dataset
        assert len(polarity) == len(DATASET_LABELS[dataset])


def test_trainable_set(ous):
    assert {name.split(".")[0] for name in trainable_names(ous)} == {
        "face_lstm", "scene_lstm", "frames_encoder", "face_align", "scene_align", "polarity_encoder",
        "polarity_head", "tfe", "prompt_context"}
    assert "tfe.queries" in trainable_names(ous)
    assert not any(p.requires_grad for p in ous.backbone.parameters())


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(ous, window, scene_window):
    ous.alpha = 0.0  # the global loss: all three terms
    out = ous.loss(window, torch.tensor([0, 3]), scene=scene_window)
    assert_gradients_reach_exactly_the_trainable(ous, out.total)


def test_alpha_switches_between_global_and_contrastive(ous, window, scene_window):
    labels = torch.tensor([0, 3])
    ous.alpha = 0.0
    global_loss = ous.loss(window, labels, scene=scene_window)
    assert torch.allclose(global_loss.total, global_loss.terms["L_similarity"] + global_loss.terms["L_polarity"]
                          + global_loss.terms["L_contrast"])
    ous.alpha = 1e9
    contrastive_only = ous.loss(window, labels, scene=scene_window)
    assert torch.allclose(contrastive_only.total, contrastive_only.terms["L_contrast"])
    # the contrastive loss alone leaves the polarity head out of training
    ous.zero_grad(set_to_none=True)
    contrastive_only.total.backward()
    grad = ous.polarity_head.weight.grad
    assert grad is None or not grad.any()


def test_loss_terms(ous, window, scene_window):
    out = ous.loss(window, torch.tensor([0, 3]), scene=scene_window)
    assert 0 <= float(out.terms["L_similarity"]) <= 2  # 1 - cosine
    assert float(out.terms["L_polarity"]) > 0 and float(out.terms["L_contrast"]) > 0
    assert out.logits.shape == (2, 7)


def test_tfe_queries_are_shared_by_every_block():
    tfe = TypeFusionEncoder(16, blocks=3, heads=2, num_queries=4)
    assert [n for n, _ in tfe.named_parameters() if "quer" in n] == ["queries"]
    tokens = torch.randn(2, 6, 16)
    out = tfe(tokens)
    assert out.shape == (2, 16)
    (out * torch.randn_like(out)).sum().backward()  # a plain sum of LayerNorm outputs has no gradient
    assert tfe.queries.grad is not None and tfe.queries.grad.abs().sum() > 0
    # the fused feature depends on every token type it attends to
    changed = tokens.clone()
    changed[:, 0] = torch.randn(2, 16)  # (a constant shift would vanish in the keys' LayerNorm)
    assert not torch.allclose(tfe(changed), out, atol=1e-5)


def test_polarity_encoder_reads_early_layers_of_the_scene(ous, window, scene_window):
    ous.eval()
    seen = {}

    def keep_input(module, args, output):
        seen["pooled"] = args[0]  # [B, T, W]: each frame's early-layer tokens, pooled

    handle = ous.polarity_encoder.register_forward_hook(keep_input)
    b, t = window.shape[:2]
    with torch.no_grad():
        ous(window, scene_window)
        scene_tap = ous.backbone.encode_image(scene_window.flatten(0, 1), TowerHooks(taps=(3,))).taps[3]
        face_tap = ous.backbone.encode_image(window.flatten(0, 1), TowerHooks(taps=(3,))).taps[3]
        scene_pooled = ous.polarity_encoder.pool(scene_tap).view(b, t, -1)
        face_pooled = ous.polarity_encoder.pool(face_tap).view(b, t, -1)
    handle.remove()
    assert torch.allclose(seen["pooled"], scene_pooled, atol=1e-6)
    assert not torch.allclose(seen["pooled"], face_pooled)


def test_frame_split_composes_to_the_model(ous, window, scene_window):
    """Face and scene frames pass one encoder independently, so the service can cache each frame once."""
    ous.eval()
    encoder, head = ous.frame_split()
    b, t = window.shape[:2]
    with torch.no_grad():
        faces = encoder(window.flatten(0, 1)).view(b, t, -1)
        scene = encoder(scene_window.flatten(0, 1)).view(b, t, -1)
        assert faces.shape[-1] == ous.backbone.embed_dim + ous.backbone.visual_width
        assert torch.allclose(head(faces, scene), ous(window, scene_window), atol=1e-5)
        # A frame's features do not depend on the other frames of its window.
        assert torch.allclose(encoder(window[0, :1]), faces[0, :1], atol=1e-5)


def test_overfits_a_tiny_batch(ous):
    inputs = {"faces": torch.randn(4, 4, 3, 64, 64), "scene": torch.randn(4, 4, 3, 64, 64)}
    labels = torch.tensor([0, 1, 2, 3])
    first, last = overfit(ous, inputs, labels, steps=30, lr=1e-3)
    assert last < 0.1 * first
    with torch.no_grad():
        assert torch.equal(ous(inputs["faces"], inputs["scene"]).argmax(dim=1), labels)


def test_onnx_matches_pytorch(window, scene_window):
    model = create_model("ous", backbone="tiny", tfe_blocks=2)
    check = {"faces": torch.randn(3, 4, 3, 64, 64), "scene": torch.randn(3, 4, 3, 64, 64)}
    diff = onnx_parity(model, {"faces": window, "scene": scene_window}, check)
    assert diff < 1e-4
