"""models/backbone.py: the hooked tower runner against open_clip's own forward, prompts, adapters, taps,
parameter groups, checkpoints."""

import pytest
import torch

from models.backbone import (BottleneckAdapter, CheckpointNotFoundError, Prompts, TowerHooks, build_clip,
                             create_backbone)
from models.text import PLACEHOLDER, tokenize, with_placeholders

IMAGES = 3


@pytest.fixture
def images():
    return torch.randn(IMAGES, 3, 64, 64)


@pytest.fixture
def placeholder_tokens():
    return tokenize([with_placeholders("happiness.", 4), with_placeholders("sadness, with tears.", 4)])


def test_runner_without_hooks_is_open_clip(tiny_backbone, images, placeholder_tokens):
    clip = tiny_backbone.clip
    with torch.no_grad():
        assert torch.allclose(tiny_backbone.encode_image(images).features, clip.encode_image(images), atol=1e-6)
        assert torch.allclose(tiny_backbone.encode_text(placeholder_tokens).features,
                              clip.encode_text(placeholder_tokens), atol=1e-6)


def test_taps_are_open_clips_intermediate_outputs(tiny_backbone, images):
    with torch.no_grad():
        out = tiny_backbone.encode_image(images, TowerHooks(taps=(0, 2)))
        ref = tiny_backbone.clip.visual.forward_intermediates(images, indices=[0, 2], output_fmt="NLC",
                                                              output_extra_tokens=True)
    for i, layer in enumerate((0, 2)):
        expected = torch.cat([ref["image_intermediates_prefix"][i], ref["image_intermediates"][i]], dim=1)
        assert torch.allclose(out.taps[layer], expected, atol=1e-6)


def _visual_by_hand(backbone, images, prompt, carry):
    """Reference for one shallow visual prompt: append it before block 0, then keep or drop it."""
    v = backbone.clip.visual
    x = v.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.view(1, 1, -1).expand(len(x), -1, -1), x], 1) + v.positional_embedding
    x = v.ln_pre(x)
    n = prompt.shape[0]
    x = torch.cat([x, prompt.expand(len(x), -1, -1)], 1)
    for i, blk in enumerate(v.transformer.resblocks):
        x = blk(x)
        if i == 0 and not carry:
            x = x[:, :-n]
    return v.ln_post(x[:, 0]) @ v.proj


@pytest.mark.parametrize("carry", [True, False])
def test_shallow_visual_prompt_is_appended_then_carried_or_dropped(tiny_backbone, images, carry):
    prompt = torch.randn(5, tiny_backbone.visual_width)
    with torch.no_grad():
        out = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: prompt}, carry=carry), taps=(0, 3)))
        plain = tiny_backbone.encode_image(images).features
        expected = _visual_by_hand(tiny_backbone, images, prompt, carry)
    assert torch.allclose(out.features, expected, atol=1e-5)
    assert not torch.allclose(out.features, plain, atol=1e-3)
    grid = (64 // 16) ** 2
    assert out.taps[0].shape == out.taps[3].shape == (IMAGES, 1 + grid, tiny_backbone.visual_width)
    assert out.tokens.shape[1] == 1 + grid  # prompt tokens never leave the tower


def test_deep_visual_prompt_replaces_the_previous_layers_prompt(tiny_backbone, images):
    width = tiny_backbone.visual_width
    first, deep = torch.randn(4, width), torch.randn(4, width)
    with torch.no_grad():
        a = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: first, 2: deep}), taps=(1,)))
        b = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: first, 2: deep * 2}), taps=(1,)))
    assert torch.equal(a.taps[1], b.taps[1])  # layers before 2 do not see the deep prompt
    assert not torch.allclose(a.features, b.features, atol=1e-4)


def test_per_image_prompts(tiny_backbone, images):
    prompt = torch.randn(4, tiny_backbone.visual_width)
    with torch.no_grad():
        shared = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: prompt})))
        per_image = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: prompt.expand(IMAGES, -1, -1)})))
    assert torch.allclose(shared.features, per_image.features, atol=1e-6)


def test_shallow_text_prompt_overwrites_the_placeholder_embeddings(tiny_backbone, placeholder_tokens):
    # a prompt equal to the placeholders' own word embeddings must leave the text features unchanged
    x_id = int(tokenize([PLACEHOLDER])[0, 1])
    same = tiny_backbone.clip.token_embedding.weight[x_id].detach().expand(4, -1)
    other = torch.randn(4, tiny_backbone.text_width)
    with torch.no_grad():
        plain = tiny_backbone.encode_text(placeholder_tokens).features
        overwritten = tiny_backbone.encode_text(placeholder_tokens, TowerHooks(prompts=Prompts({0: same}))).features
        prompted = tiny_backbone.encode_text(placeholder_tokens, TowerHooks(prompts=Prompts({0: other}))).features
    assert torch.allclose(overwritten, plain, atol=1e-6)
    assert not torch.allclose(prompted, plain, atol=1e-3)


def test_deep_text_prompt_acts_from_its_layer_on(tiny_backbone, placeholder_tokens):
    deep = torch.randn(4, tiny_backbone.text_width)
    with torch.no_grad():
        a = tiny_backbone.encode_text(placeholder_tokens, TowerHooks(prompts=Prompts({2: deep}), taps=(1, 2)))
        b = tiny_backbone.encode_text(placeholder_tokens, TowerHooks(taps=(1, 2)))
    assert torch.equal(a.taps[1], b.taps[1])
    assert not torch.allclose(a.taps[2], b.taps[2], atol=1e-4)
    assert a.taps[2].shape == b.taps[2].shape  # text prompts overwrite, never lengthen


def test_token_hook_sees_the_prompted_sequence(tiny_backbone, images):
    seen = []

    def hook(x):
        seen.append(x.shape)
        return x * 0.5

    prompt = torch.randn(3, tiny_backbone.visual_width)
    with torch.no_grad():
        hooked = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: prompt}), token_hooks={1: hook}))
        plain = tiny_backbone.encode_image(images, TowerHooks(prompts=Prompts({0: prompt})))
    assert seen == [torch.Size([IMAGES, 1 + 16 + 3, tiny_backbone.visual_width])]
    assert not torch.allclose(hooked.features, plain.features, atol=1e-4)


def test_adapters_start_as_identity_and_train(tiny_backbone, images, placeholder_tokens):
    with torch.no_grad():
        before_image = tiny_backbone.encode_image(images).features
        before_text = tiny_backbone.encode_text(placeholder_tokens).features
    tiny_backbone.freeze_encoders()
    tiny_backbone.add_adapter("visual", 1, "attn", BottleneckAdapter(tiny_backbone.visual_width))
    tiny_backbone.add_adapter("text", 0, "mlp", BottleneckAdapter(tiny_backbone.text_width))
    image = tiny_backbone.encode_image(images).features
    text = tiny_backbone.encode_text(placeholder_tokens).features
    assert torch.allclose(image, before_image, atol=1e-6) and torch.allclose(text, before_text, atol=1e-6)
    (image.sum() + text.sum()).backward()
    adapters = dict(tiny_backbone.parameter_groups()["adapters"])
    assert {n.split(".")[1] for n in adapters} == {"visual_1_attn", "text_0_mlp"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in adapters.items() if n.endswith("up.weight"))
    assert all(p.grad is None for _, p in tiny_backbone.clip.named_parameters())


def test_adapter_sites_are_checked(tiny_backbone):
    with pytest.raises(IndexError):
        tiny_backbone.add_adapter("visual", 4, "attn", BottleneckAdapter(64))
    with pytest.raises(ValueError):
        tiny_backbone.add_adapter("visual", 0, "ln", BottleneckAdapter(64))


def test_parameter_groups_partition_the_backbone_and_freeze(tiny_backbone):
    tiny_backbone.add_adapter("visual", 0, "mlp", BottleneckAdapter(64))
    groups = tiny_backbone.parameter_groups()
    names = [n for group in groups.values() for n, _ in group]
    assert len(names) == len(set(names)) == len(list(tiny_backbone.parameters()))
    assert all(n.startswith("clip.visual.") for n, _ in groups["visual"])
    assert {n for n, _ in groups["logit_scale"]} == {"clip.logit_scale"}
    assert "clip.token_embedding.weight" in dict(groups["text"])
    tiny_backbone.set_trainable(["text"], False)
    assert not any(p.requires_grad for _, p in groups["text"])
    assert all(p.requires_grad for _, p in groups["visual"] + groups["adapters"])
    tiny_backbone.freeze_encoders()
    assert {n for n, p in tiny_backbone.named_parameters() if p.requires_grad} == {n for n, _ in groups["adapters"]}
    with pytest.raises(KeyError):
        tiny_backbone.set_trainable(["prompts"], True)


def test_missing_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as err:
        build_clip("ViT-B-16", tmp_path / "ViT-B-16-openai.bin")
    message = str(err.value)
    assert "ViT-B-16-openai.bin" in message
    assert "pretrained='openai'" in message and "laion2b_s34b_b88k" in message
    assert "checkpoint=None" in message


def test_checkpoint_file_is_loaded(tmp_path, tiny_backbone):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_backbone.clip.state_dict(), path)
    loaded = create_backbone("tiny", path, quick_gelu=False)  # a file of unknown origin: the activation is named
    for (name, a), (_, b) in zip(tiny_backbone.clip.state_dict().items(), loaded.clip.state_dict().items()):
        assert torch.equal(a, b), name


def test_unknown_backbone():
    with pytest.raises(ValueError, match="ViT-B-16"):
        build_clip("ViT-H-14")


def test_full_size_backbone_facts():
    backbone = create_backbone("ViT-B-32")  # random weights, ~2 s
    assert (backbone.visual_width, backbone.visual_layers, backbone.text_width, backbone.text_layers,
            backbone.embed_dim, backbone.image_size) == (768, 12, 512, 12, 512, 224)
    with torch.no_grad():
        out = backbone.encode_image(torch.randn(1, 3, 224, 224), TowerHooks(taps=(3,)))
    assert out.features.shape == (1, 512) and out.taps[3].shape == (1, 50, 768)
