"""models/dk_clip.py on the tiny backbone: shapes, the hierarchical video encoder, AU prompts, CMAM, the noise
reducing module and the consistency loss as the paper describes them, what trains, overfitting, ONNX parity.
Windows are 8 frames in the paper's N = 4 snippets of 2."""

import pytest
import torch

from models.dk_clip import snippet_scores
from models.registry import create_model
from models.text import _tokenizer
from tests.models.checks import assert_gradients_reach_exactly_the_trainable, onnx_parity, overfit, trainable_names

FRAMES = 8


@pytest.fixture
def model():
    return create_model("dk_clip", backbone="tiny", num_frames=FRAMES)


@pytest.fixture
def clip8():
    return torch.randn(2, FRAMES, 3, 64, 64)


def test_paper_defaults(model):
    assert model.snippets == 4 and model.snippet_len == 2  # N = 4
    assert model.theta == 0.15 and model.lam == 1.0
    assert torch.allclose(model.cmam.gamma, torch.full_like(model.cmam.gamma, 0.1))  # gamma initialised at 0.1
    assert len(model.messages.attn) == model.backbone.visual_layers  # message tokens in every CFAM layer
    default = create_model("dk_clip", backbone="tiny")
    assert default.num_frames == 16 and default.snippet_len == 4  # T = 16, N = 4 (sec. 4.1)
    with pytest.raises(ValueError, match="snippets"):
        create_model("dk_clip", backbone="tiny", num_frames=6)


@pytest.mark.parametrize("dataset, classes", [("dfew", 7), ("mafw", 11)])
def test_logits_shape(clip8, dataset, classes):
    model = create_model("dk_clip", backbone="tiny", num_frames=FRAMES, dataset=dataset).eval()
    with torch.no_grad():
        out = model.features(clip8)
    assert out.logits.shape == (2, classes) and torch.isfinite(out.logits).all()
    assert out.local_logits.shape == (2, 4, classes) and out.scores.shape == (2, 4)
    assert model.bundle_cfg["method"] == "dk_clip"


def test_prompts_join_aus_with_or(model):
    texts = [_tokenizer().decode(t[t > 0].tolist()) for t in model.class_tokens]
    assert texts[0].startswith("<start_of_text>happiness with cheek raiser , lip corner puller or lip part")
    assert texts[2] == "<start_of_text>neutral . <end_of_text>"  # no AUs: the class name alone


def test_trainable_set(model):
    names = trainable_names(model)
    assert {n.split(".")[0] for n in names} == {"backbone", "messages", "msim", "cmam"}
    visual = {f"backbone.{n}" for n, _ in model.backbone.parameter_groups()["visual"]}
    assert {n for n in names if n.startswith("backbone.")} == visual - {"backbone.clip.visual.conv1.weight"}
    assert not any(p.requires_grad for _, p in model.backbone.parameter_groups()["text"])
    assert "cmam.gamma" in names


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(model, clip8):
    model.theta = 0.0  # keep every snippet, so every local prediction takes part
    assert_gradients_reach_exactly_the_trainable(model, model.loss(clip8, torch.tensor([1, 5])).total)


def test_message_tokens_stay_inside_their_snippet(model, clip8):
    model.eval()
    changed = clip8.clone()
    changed[:, 3] = torch.randn_like(changed[:, 3])  # second frame of snippet 1
    with torch.no_grad():
        before, _ = model.encode_frames(clip8)
        after, _ = model.encode_frames(changed)
    same = (before - after).abs().amax(dim=(0, 2)) < 1e-5
    assert same.tolist() == [True, True, False, False, True, True, True, True]


def test_noise_scores_are_normalised_and_rank_by_similarity():
    video = torch.randn(3, 16)
    snippets = torch.randn(3, 4, 16)
    snippets[:, 2] = video * 2  # the snippet that agrees with the video
    scores = snippet_scores(snippets, video)
    assert torch.allclose(scores.sum(dim=1), torch.ones(3))
    assert (scores.argmax(dim=1) == 2).all()
    assert (scores.amax(dim=1) >= 0.25).all()  # the best snippet always survives any theta <= 1/N


def test_erased_snippets_leave_the_text_prompts(model, clip8):
    model.eval()
    seen = {}
    handle = model.cmam.register_forward_hook(lambda module, args, output: seen.update(z_bar=args[1]))
    with torch.no_grad():
        model.theta = 0.0
        out = model.features(clip8)
        all_frames = seen["z_bar"]
        # min-max then softmax over 4 snippets: the weakest a* is at most 1 / (3 + e) < 0.2, the best at least
        # e / (1 + 3e) > 0.2, so 0.2 erases at least one snippet and keeps at least one
        model.theta = 0.2
        out = model.features(clip8)
        _, patches = model.encode_frames(clip8)
    handle.remove()
    assert torch.allclose(all_frames, patches.mean(dim=1), atol=1e-5)
    keep = (out.scores >= model.theta)
    assert torch.equal(out.keep.bool(), keep) and keep.sum(dim=1).min() >= 1 and not keep.all()
    frames = keep.repeat_interleave(2, dim=1)
    for b in range(2):
        assert torch.allclose(seen["z_bar"][b], patches[b, frames[b]].mean(dim=0), atol=1e-5)


def test_consistency_loss_terms(model, clip8):
    labels = torch.tensor([0, 3])
    out = model.loss(clip8, labels)
    terms = out.terms
    assert torch.allclose(out.total, terms["L_g"] + 1.0 * (terms["L_l"] + terms["L_k"]))
    assert float(terms["L_k"]) >= 0
    model.lam = 0.0
    assert torch.allclose(model.loss(clip8, labels).total, terms["L_g"])


def test_overfits_a_tiny_batch(model):
    inputs = {"faces": torch.randn(4, FRAMES, 3, 64, 64)}
    labels = torch.tensor([0, 1, 2, 3])
    first, last = overfit(model, inputs, labels, steps=15, lr=1e-3)
    assert last < 0.2 * first
    with torch.no_grad():
        assert torch.equal(model(inputs["faces"]).argmax(dim=1), labels)


def test_onnx_matches_pytorch(model, clip8):
    diff = onnx_parity(model, {"faces": clip8}, {"faces": torch.randn(3, FRAMES, 3, 64, 64)})
    assert diff < 1e-4
