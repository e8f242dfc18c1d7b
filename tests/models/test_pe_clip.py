"""models/pe_clip.py on the tiny backbone: shapes, the adapters and MaPLe prompts as the paper describes them, what
trains, overfitting, ONNX parity."""

import pytest
import torch

from models.backbone import BottleneckAdapter, TowerHooks
from models.pe_clip import TemporalDynamicAdapter
from models.registry import create_model
from models.text import _tokenizer
from tests.models.checks import assert_gradients_reach_exactly_the_trainable, onnx_parity, overfit, trainable_names


@pytest.fixture
def model():
    return create_model("pe_clip", backbone="tiny")


def _perturb_adapters(model, std=0.05):
    """New adapters start as the identity (zero up-projections), which also keeps gradients from their inner layers;
    give them small up-projections, as one training step would."""
    with torch.no_grad():
        for module in model.backbone.adapters.values():
            module.up.weight.normal_(0, std)


def test_paper_defaults(model):
    adapters = model.backbone.adapters
    layers = model.backbone.visual_layers
    assert sorted(adapters) == sorted(f"{tower}_{i}_{site}" for tower in ("visual", "text") for i in range(layers)
                                      for site in ("attn", "mlp"))
    assert all(type(adapters[f"visual_{i}_attn"]) is BottleneckAdapter for i in range(layers))  # ShA
    assert all(type(adapters[f"visual_{i}_mlp"]) is TemporalDynamicAdapter for i in range(layers))  # TDA
    assert all(type(adapters[f"text_{i}_{s}"]) is BottleneckAdapter for i in range(layers) for s in ("attn", "mlp"))
    width = model.backbone.visual_width
    assert adapters["visual_0_attn"].down.out_features == width // 8  # r = 8
    assert adapters["visual_0_mlp"].gru.hidden_size == width // 8
    assert model.prompts.num_tokens == 2 and model.prompts.depth == 4  # MaPLe's J = 9, capped at 4 tiny layers
    assert create_model("pe_clip", backbone="tiny", reduction=16).backbone.adapters["text_0_mlp"].down.out_features \
        == model.backbone.text_width // 16


@pytest.mark.parametrize("dataset, classes", [("dfew", 7), ("mafw", 11)])
def test_logits_shape(window, dataset, classes):
    model = create_model("pe_clip", backbone="tiny", dataset=dataset).eval()
    with torch.no_grad():
        logits = model(window)
    assert logits.shape == (window.shape[0], classes) and torch.isfinite(logits).all()
    assert model.bundle_cfg["method"] == "pe_clip" and model.bundle_cfg["num_frames"] == 16


def test_prompts_are_au_descriptions(model):
    texts = [_tokenizer().decode(t[t > 0].tolist()) for t in model.class_tokens]
    assert "cheek raiser , lip corner puller" in texts[0]  # happy, Table 1
    assert "happiness" not in texts[0]  # the descriptions replace the class name
    mafw = create_model("pe_clip", backbone="tiny", dataset="mafw")
    assert "contempt" in _tokenizer().decode(mafw.class_tokens[7][mafw.class_tokens[7] > 0].tolist())


def test_trainable_set_is_adapters_and_prompts(model):
    names = trainable_names(model)
    assert {n.split(".")[0] for n in names} == {"backbone", "prompts"}
    assert {n for n in names if n.startswith("backbone.")} == {
        f"backbone.{n}" for n, _ in model.backbone.parameter_groups()["adapters"]}
    for group in ("visual", "text", "logit_scale"):
        assert not any(p.requires_grad for _, p in model.backbone.parameter_groups()[group])
    assert {n for n in names if n.startswith("prompts.")} == {"prompts.text_prompts"} | {
        f"prompts.couple.{i}.{w}" for i in range(4) for w in ("weight", "bias")}


def test_new_adapters_leave_clip_unchanged(model, window):
    """Zero up-projections: with the prompts switched off, the adapted encoders are exactly frozen CLIP."""
    model.eval()
    with torch.no_grad():
        adapted = model.backbone.encode_image(window.flatten(0, 1), TowerHooks(num_frames=4)).features
        plain = model.backbone.clip.encode_image(window.flatten(0, 1))
    assert torch.allclose(adapted, plain, atol=1e-5)


def test_temporal_adapter_runs_over_frames_per_token():
    torch.manual_seed(0)
    tda = TemporalDynamicAdapter(16, reduction=8)
    with torch.no_grad():
        tda.up.weight.normal_(0, 0.5)
    x = torch.randn(2 * 5, 3, 16)  # (b t) frames of 3 tokens
    changed = x.clone()
    changed[3, 1] += 1.0  # clip 0, frame 3, token 1
    delta = (tda(changed, 5) - tda(x, 5)).abs().sum(dim=-1).view(2, 5, 3)
    assert (delta[0, :3] == 0).all()  # a unidirectional GRU: earlier frames do not see it
    assert (delta[0, 3:, 1] > 0).all()  # the same token in this and later frames does
    assert (delta[0, :, [0, 2]] == 0).all() and (delta[1] == 0).all()  # other tokens, other clips do not


def test_dynamic_scaling_is_relu_of_a_linear_map():
    tda = TemporalDynamicAdapter(16, reduction=8)
    with torch.no_grad():
        tda.up.weight.normal_(0, 0.5)
        tda.scale.bias.fill_(-1e3)  # ReLU(negative) = 0: no temporal contribution at all
    x = torch.randn(4, 3, 16)
    assert torch.equal(tda(x, 2), x)
    with torch.no_grad():
        tda.scale.bias.fill_(2.0)
    base = TemporalDynamicAdapter(16, reduction=8)
    base.load_state_dict(tda.state_dict())
    with torch.no_grad():
        base.scale.bias.fill_(1.0)
    assert torch.allclose(tda(x, 2) - x, 2 * (base(x, 2) - x), atol=1e-6)  # eq. 12 scales the up-projection


def test_visual_prompts_are_coupled_to_text_prompts(model):
    hooks = model.prompts.visual_hooks(4)
    assert hooks.prompts.carry is True and sorted(hooks.prompts.tokens) == [0, 1, 2, 3]
    with torch.no_grad():
        assert torch.allclose(hooks.prompts.tokens[2], model.prompts.couple[2](model.prompts.text_prompts[2]))


def test_layer_0_visual_prompts_are_appended_before_ln_pre_as_in_maple(model, window):
    """MaPLe: x = ln_pre(cat([patches + positions, P_v0])). The backbone appends after ln_pre, so the model hands it
    ln_pre(P_v0): the same tokens, since LayerNorm normalises each token on its own."""
    visual = model.backbone.clip.visual
    with torch.no_grad():
        p0 = model.prompts.couple[0](model.prompts.text_prompts[0])
        hooks = model.prompts.visual_hooks(4, visual.ln_pre)
        images = window.flatten(0, 1)
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1), x], 1)
        x = x + visual.positional_embedding
        maple = visual.ln_pre(torch.cat([x, p0.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1))
        ours = torch.cat([visual.ln_pre(x), hooks.prompts.tokens[0].unsqueeze(0).expand(x.shape[0], -1, -1)], 1)
    assert torch.allclose(maple, ours, atol=1e-6)


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(model, window):
    _perturb_adapters(model)
    assert_gradients_reach_exactly_the_trainable(model, model.loss(window, torch.tensor([1, 5])).total)


def test_overfits_a_tiny_batch(model):
    inputs = {"faces": torch.randn(4, 4, 3, 64, 64)}
    labels = torch.tensor([0, 1, 2, 3])
    first, last = overfit(model, inputs, labels, steps=25, lr=3e-3)
    assert last < 0.2 * first
    with torch.no_grad():
        assert torch.equal(model(inputs["faces"]).argmax(dim=1), labels)


def test_frozen_encoders_do_not_move_in_training(model):
    frozen = {n: p.clone() for n, p in model.backbone.named_parameters() if not n.startswith("adapters.")}
    overfit(model, {"faces": torch.randn(2, 4, 3, 64, 64)}, torch.tensor([0, 1]), steps=2, lr=1e-2)
    assert all(torch.equal(frozen[n], p) for n, p in model.backbone.named_parameters() if n in frozen)


def test_onnx_matches_pytorch(model, window):
    _perturb_adapters(model)
    diff = onnx_parity(model, {"faces": window}, {"faces": torch.randn(3, 4, 3, 64, 64)})
    assert diff < 1e-4
