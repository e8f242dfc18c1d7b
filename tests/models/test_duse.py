"""models/duse.py on the tiny backbone: shapes, HTPC and LSEA as the paper describes them, what trains, overfitting,
ONNX parity."""

import pytest
import torch
import torch.nn.functional as F

from models.duse import HTPC, SemanticAggregation, resolve_prompt_depth
from models.registry import create_model
from tests.models.checks import assert_gradients_reach_exactly_the_trainable, onnx_parity, overfit, trainable_names


@pytest.fixture
def duse():
    return create_model("duse", backbone="tiny")


@pytest.mark.parametrize("strategy, visual, text, depth", [
    ("shallow", 12, 12, 1), ("normal", 12, 12, 4), ("deep", 12, 12, 8),  # ViT-B/32, ViT-B/16
    ("normal", 24, 12, 8),  # ViT-L/14, the paper's headline setting
    ("deep", 4, 4, 3), (2, 4, 4, 2),
])
def test_prompt_depth_strategies(strategy, visual, text, depth):
    assert resolve_prompt_depth(strategy, visual, text) == depth


def test_prompt_depth_limits():
    with pytest.raises(ValueError):
        resolve_prompt_depth("deep", 24, 12)  # 16 visual layers, but only 12 text layers to derive them from
    with pytest.raises(ValueError):
        resolve_prompt_depth("deeper", 12, 12)


def test_paper_defaults(duse):
    assert duse.htpc.num_tokens == 4 and duse.htpc.depth == 3  # n = 4; "deep" on 4 layers
    assert duse.lsea.semantic.heads == 4 and duse.lsea.semantic.beta == 0.7


@pytest.mark.parametrize("dataset, classes", [("dfew", 7), ("ferv39k", 7), ("mafw", 11)])
def test_logits_shape(window, dataset, classes):
    model = create_model("duse", backbone="tiny", dataset=dataset).eval()
    with torch.no_grad():
        logits = model(window)
    assert logits.shape == (window.shape[0], classes) and torch.isfinite(logits).all()
    assert model.bundle_cfg["labels"] == list(model.labels) and len(model.labels) == classes


def test_trainable_set_is_htpc_and_lsea(duse):
    assert trainable_names(duse) == {
        "htpc.text_prompts", "htpc.to_visual.0.weight", "htpc.to_visual.0.bias", "htpc.to_visual.2.weight",
        "htpc.to_visual.2.bias",
        "lsea.temporal.q.weight", "lsea.temporal.q.bias", "lsea.temporal.k.weight", "lsea.temporal.k.bias",
        "lsea.temporal.v.weight", "lsea.temporal.v.bias", "lsea.temporal.out.weight", "lsea.temporal.out.bias",
        "lsea.pool.score.weight", "lsea.pool.score.bias",
        "lsea.semantic.to_heads.weight", "lsea.semantic.to_heads.bias",
    }
    assert not any(p.requires_grad for p in duse.backbone.parameters())


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(duse, window):
    labels = torch.tensor([1, 5])
    assert_gradients_reach_exactly_the_trainable(duse, duse.loss(window, labels).total)


def test_visual_prompts_are_generated_from_the_text_prompts(duse):
    htpc: HTPC = duse.htpc
    hooks = htpc.visual_hooks(batch=2, num_frames=3)
    tokens = hooks.prompts.tokens
    assert sorted(tokens) == [0, 1, 2] and hooks.prompts.carry is False  # eq. 5: dropped after layer M
    assert sorted(htpc.text_hooks().prompts.tokens) == [0, 1, 2]
    with torch.no_grad():
        generated = htpc.to_visual(htpc.text_prompts)
    assert torch.allclose(tokens[1], generated[1]) and torch.allclose(tokens[2], generated[2])
    # layer 1: the same generated prompt plus each frame's sinusoidal position, frames laid out as (b t)
    first = tokens[0].view(2, 3, htpc.num_tokens, -1)
    assert torch.allclose(first[1], first[0])
    for t in range(3):
        assert torch.allclose(first[0, t], generated[0] + htpc.frame_positions[t])
    assert not torch.allclose(first[0, 0], first[0, 1])


def test_frame_order_reaches_the_logits_only_through_the_frame_positions(duse, window):
    reversed_window = window.flip(1)
    duse.eval()
    with torch.no_grad():
        assert not torch.allclose(duse(window), duse(reversed_window), atol=1e-4)
        duse.htpc.frame_positions.zero_()
        assert torch.allclose(duse(window), duse(reversed_window), atol=1e-4)


def test_semantic_aggregation_mixes_with_beta():
    torch.manual_seed(0)
    video, text = torch.randn(3, 16), torch.randn(7, 16)
    visual_only = SemanticAggregation(16, heads=4, beta=1.0)
    heads = visual_only.to_heads(video).view(3, 4, 16)
    assert torch.allclose(visual_only(video, text), heads.mean(dim=1), atol=1e-6)
    text_only = SemanticAggregation(16, heads=4, beta=0.0)
    text_only.load_state_dict(visual_only.state_dict())
    out = text_only(video, text)
    v, t = text_only.to_heads(video).view(3, 4, 16), text_only.to_heads(text).view(7, 4, 16)
    # eq. 12 head by head: softmax over classes of the cosine (sec. III-C), then the weighted sum of the class texts
    expected = torch.stack([(F.normalize(v[:, h], dim=-1) @ F.normalize(t[:, h], dim=-1).t()).softmax(-1)
                            @ t[:, h] for h in range(4)], dim=1).mean(dim=1)
    assert torch.allclose(out, expected, atol=1e-5)
    mixed = SemanticAggregation(16, heads=4, beta=0.7)
    mixed.load_state_dict(visual_only.state_dict())
    assert torch.allclose(mixed(video, text), 0.7 * heads.mean(dim=1) + 0.3 * out, atol=1e-5)


def test_semantic_heads_start_near_identity():
    aggregation = SemanticAggregation(32, heads=4)
    weight = aggregation.to_heads.weight.view(4, 32, 32)
    assert torch.allclose(weight, torch.eye(32).expand(4, -1, -1), atol=0.15)
    assert not torch.equal(weight[0], weight[1])


def test_overfits_a_tiny_batch(duse):
    inputs = {"faces": torch.randn(4, 4, 3, 64, 64)}
    labels = torch.tensor([0, 1, 2, 3])
    first, last = overfit(duse, inputs, labels, steps=60, lr=3e-3)
    assert last < 0.1 * first
    with torch.no_grad():
        assert torch.equal(duse(inputs["faces"]).argmax(dim=1), labels)


def test_frozen_encoders_do_not_move_in_training(duse):
    before = {n: p.clone() for n, p in duse.backbone.named_parameters()}
    overfit(duse, {"faces": torch.randn(2, 4, 3, 64, 64)}, torch.tensor([0, 1]), steps=2, lr=1e-2)
    assert all(torch.equal(before[n], p) for n, p in duse.backbone.named_parameters())


def test_onnx_matches_pytorch(duse, window):
    diff = onnx_parity(duse, {"faces": window}, {"faces": torch.randn(3, 4, 3, 64, 64)})
    assert diff < 1e-4
