"""models/dfer_clip.py on the tiny backbone: the released model's parts (temporal transformer, class-specific
context before the descriptors, fixed temperature, [0, 1] pixels), what trains, the recipe's learning-rate groups,
the frame split, overfitting, ONNX parity."""

import math

import pytest
import torch
import torch.nn.functional as F

from models.dfer_clip import TemporalBlock, TemporalTransformer
from models.registry import create_model, load_config
from models.text import DFER_CLIP_DESCRIPTORS, _tokenizer
from tests.models.checks import assert_gradients_reach_exactly_the_trainable, onnx_parity, overfit, trainable_names


@pytest.fixture
def model():
    return create_model("dfer_clip", backbone="tiny")


def test_released_defaults():
    cfg = load_config("dfer_clip")
    assert cfg == {"backbone": "ViT-B-32", "quick_gelu": True, "context_tokens": 8, "temporal_layers": 1, "heads": 8,
                   "head_dim": 64, "mlp_dim": 1024, "num_frames": 16}


def test_full_size_is_openai_vit_b32_with_quick_gelu():
    from open_clip.transformer import QuickGELU

    model = create_model("dfer_clip", dataset="mafw")
    clip = model.backbone.clip
    assert model.backbone.name == "ViT-B-32" and clip.visual.conv1.kernel_size == (32, 32)
    assert isinstance(clip.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(clip.transformer.resblocks[0].mlp.gelu, QuickGELU)
    net = model.temporal_net
    assert net.pos_embedding.shape == (1, 17, 512) and net.cls_token.shape == (1, 1, 512) and len(net.blocks) == 1
    assert net.blocks[0].qkv.weight.shape == (3 * 8 * 64, 512) and net.blocks[0].qkv.bias is None
    assert net.blocks[0].mlp[0].out_features == 1024
    assert model.class_context.shape == (11, 8, 512)


@pytest.mark.parametrize("dataset, classes", [("dfew", 7), ("mafw", 11)])
def test_logits_shape_and_bundle_cfg(window, dataset, classes):
    model = create_model("dfer_clip", backbone="tiny", dataset=dataset).eval()
    with torch.no_grad():
        logits = model(window)
    assert logits.shape == (window.shape[0], classes) and torch.isfinite(logits).all()
    cfg = model.bundle_cfg
    assert cfg["method"] == "dfer_clip" and cfg["num_frames"] == 16 and cfg["name"] == f"dfer_clip-tiny-{dataset}"
    assert cfg["mean"] == [0.0, 0.0, 0.0] and cfg["std"] == [1.0, 1.0, 1.0]  # pixels in [0, 1], no CLIP mean/std


def test_logits_are_cosine_over_001(model, window):
    model.eval()
    with torch.no_grad():
        b, t = window.shape[:2]
        video = model.temporal_net(model.frame_features(window.flatten(0, 1)).view(b, t, -1))
        cosine = F.normalize(video, dim=-1) @ F.normalize(model.text_features(), dim=-1).t()
        assert torch.allclose(model(window), cosine / 0.01, atol=1e-4)


def test_prompts_are_class_context_then_descriptor(model):
    tokens = model.class_tokens
    for label, row in zip(model.labels, tokens):
        text = _tokenizer().decode(row[row > 0].tolist())
        assert text.startswith("<start_of_text>" + "x " * 8)  # 8 placeholders, overwritten by the context
        assert DFER_CLIP_DESCRIPTORS[label].split(",")[0] in text
    assert model.class_context.shape == (7, 8, model.backbone.text_width)  # one context per class


def test_each_class_has_its_own_context(model):
    """Changing class 0's context changes class 0's text feature only."""
    with torch.no_grad():
        before = model.text_features()
        model.class_context[0] += 0.5
        after = model.text_features()
    changed = (after - before).abs().amax(dim=1) > 1e-6
    assert changed.tolist() == [True] + [False] * 6


def test_trainable_set_is_image_encoder_temporal_net_and_context(model):
    names = trainable_names(model)
    visual = {f"backbone.{n}" for n, _ in model.backbone.parameter_groups()["visual"]}
    assert {n for n in names if n.startswith("backbone.")} == visual
    assert {n for n in names if not n.startswith("backbone.")} == {"class_context"} | {
        f"temporal_net.{n}" for n, _ in model.temporal_net.named_parameters()}
    for group in ("text", "logit_scale"):
        assert not any(p.requires_grad for _, p in model.backbone.parameter_groups()[group])


def test_gradients_reach_exactly_the_trainable(model, window):
    model.train()
    out = model.loss(window, torch.tensor([0, 3]))
    assert set(out.terms) == {"L_ce"}
    assert_gradients_reach_exactly_the_trainable(model, out.total)


@pytest.mark.parametrize("dataset", ["dfew", "ferv39k", "mafw"])
def test_recipe_puts_each_parameter_in_its_released_sgd_group(dataset):
    """main.py's three SGD groups: temporal net 1e-2, image encoder 1e-5, prompt learner 1e-3; momentum 0.9,
    weight decay 1e-4 on everything; the recipe validates and builds that optimiser for the model."""
    from models.recipes import load_recipe
    from models.training.optim import build_optimizer

    recipe = load_recipe("dfer_clip", dataset)
    assert (recipe.optimizer, recipe.momentum, recipe.weight_decay, recipe.batch_size, recipe.epochs) == (
        "sgd", 0.9, 1e-4, 48, 50)
    assert (recipe.schedule, recipe.milestones, recipe.gamma) == ("multistep", [30, 40], 0.1)
    model = create_model("dfer_clip", backbone="tiny", dataset=dataset)
    optimizer = build_optimizer(model, recipe)
    rate = {id(p): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]}
    for name, param in model.named_parameters():
        if param.requires_grad:
            lr = 1e-5 if name.startswith("backbone.clip.visual.") else 1e-3 if name == "class_context" else 1e-2
            assert rate[id(param)] == (lr, 1e-4), name


def test_temporal_block_is_the_released_pre_norm_block():
    """x + proj(softmax(q k^T / 8) v) over LN(x) with bias-free qkv, then x + MLP(LN(x)) with tanh GELU."""
    torch.manual_seed(0)
    block = TemporalBlock(32, heads=8, head_dim=64, mlp_dim=48).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        h = block.attn_norm(x)
        q, k, v = (h @ block.qkv.weight.t()).chunk(3, dim=-1)
        q, k, v = (t.view(2, 5, 8, 64).transpose(1, 2) for t in (q, k, v))
        attn = ((q @ k.transpose(-2, -1)) / 8).softmax(-1) @ v
        y = x + block.proj(attn.transpose(1, 2).reshape(2, 5, 512))
        z = block.mlp[0](block.mlp_norm(y))
        z = 0.5 * z * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
        expected = y + block.mlp[2](z)
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_temporal_net_reads_the_class_token_and_refuses_too_many_frames():
    torch.manual_seed(0)
    net = TemporalTransformer(16, num_frames=4, heads=2, head_dim=8, mlp_dim=32).eval()
    frames = torch.randn(1, 4, 16)
    with torch.no_grad():
        out = net(frames)
        permuted = net(frames[:, [1, 0, 2, 3]])  # positions make the order matter
    assert out.shape == (1, 16) and not torch.allclose(out, permuted)
    with pytest.raises(ValueError, match="4 frames"):
        net(torch.randn(1, 5, 16))


def test_frame_split_composes_to_the_model(model, window):
    model.eval()
    encoder, head = model.frame_split()
    with torch.no_grad():
        features = encoder(window.flatten(0, 1)).view(window.shape[0], window.shape[1], -1)
        assert torch.allclose(head(features), model(window), atol=1e-5)


def test_unknown_label_is_refused():
    with pytest.raises(ValueError, match="confused"):
        create_model("dfer_clip", backbone="tiny", labels=("happy", "sad", "confused"))


def test_overfits_a_tiny_batch(model, window):
    first, last = overfit(model, {"faces": window}, torch.tensor([1, 4]), steps=15, lr=1e-3)
    assert last < 0.5 * first


def test_onnx_parity(model, window):
    assert onnx_parity(model, {"faces": window}, {"faces": torch.randn(3, *window.shape[1:])}) < 1e-4
