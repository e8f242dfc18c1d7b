"""Synthetic checkpoints in exactly the layout of DFER-CLIP's released files (zengqunzhao/DFER-CLIP main.py), with
random weights, and an independent forward pass with the released model's semantics, for the converter's tests.

The layout: `torch.save({epoch, state_dict, best_acc, optimizer, recorder})` of `torch.nn.DataParallel(GenerateModel)`
(keys `module.`...), the CLIP tensors under OpenAI's names, shared by the encoders and `clip_model_`, the SGD
optimizer state, and the script's `__main__.RecorderMeter` with numpy arrays pickled under numpy 1.x names.
"""

from __future__ import annotations

import math
import pickle
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.text import DFER_CLIP_DESCRIPTORS, DFER_CLIP_RELEASE_LABELS, tokenize, with_placeholders


class RecorderMeter:
    """The training script's recorder (its attributes as main.py sets them); pickled as __main__.RecorderMeter."""

    def __init__(self, total_epoch: int):
        self.total_epoch = total_epoch
        self.current_epoch = 0
        self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)
        self.epoch_accuracy = np.zeros((total_epoch, 2), dtype=np.float32)


class _ReleasedNamesPickler(pickle._Pickler):
    """Writes the globals under the names the released files carry: numpy 1.x's numpy.core (numpy 2 pickles say
    numpy._core) and the training script's __main__ for the recorder."""

    RENAMED = {RecorderMeter: ("__main__", "RecorderMeter")}

    def save_global(self, obj, name=None):
        from numpy._core import multiarray

        renamed = self.RENAMED.get(obj) or (
            ("numpy.core.multiarray", "_reconstruct") if obj is multiarray._reconstruct else None)
        if renamed is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{renamed[0]}\n{renamed[1]}\n".encode())
        self.memoize(obj)


RELEASED_PICKLE = types.SimpleNamespace(Pickler=_ReleasedNamesPickler, __name__="pickle")


def _openai_clip_state(width: int, layers: int, heads: int, patch: int, image_size: int, embed: int,
                       text_width: int, text_layers: int, vocab: int = 49408, context: int = 77,
                       gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """An OpenAI CLIP ViT state dict (clip/model.py names) with random weights."""

    def rnd(*shape, std=0.02):
        return torch.randn(*shape, generator=gen) * std

    def block(prefix: str, w: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.attn.in_proj_weight": rnd(3 * w, w, std=w ** -0.5),
                f"{prefix}.attn.in_proj_bias": rnd(3 * w),
                f"{prefix}.attn.out_proj.weight": rnd(w, w, std=w ** -0.5),
                f"{prefix}.attn.out_proj.bias": rnd(w),
                f"{prefix}.ln_1.weight": 1 + rnd(w, std=0.1), f"{prefix}.ln_1.bias": rnd(w),
                f"{prefix}.mlp.c_fc.weight": rnd(4 * w, w, std=w ** -0.5), f"{prefix}.mlp.c_fc.bias": rnd(4 * w),
                f"{prefix}.mlp.c_proj.weight": rnd(w, 4 * w, std=(4 * w) ** -0.5), f"{prefix}.mlp.c_proj.bias": rnd(w),
                f"{prefix}.ln_2.weight": 1 + rnd(w, std=0.1), f"{prefix}.ln_2.bias": rnd(w)}

    grid = image_size // patch
    state = {"positional_embedding": rnd(context, text_width, std=0.01), "text_projection": rnd(text_width, embed,
                                                                                               std=text_width ** -0.5),
             "logit_scale": torch.tensor(math.log(100.0)),
             "visual.class_embedding": rnd(width, std=width ** -0.5),
             "visual.positional_embedding": rnd(grid * grid + 1, width, std=width ** -0.5),
             "visual.proj": rnd(width, embed, std=width ** -0.5),
             "visual.conv1.weight": rnd(width, 3, patch, patch),
             "visual.ln_pre.weight": 1 + rnd(width, std=0.1), "visual.ln_pre.bias": rnd(width),
             "visual.ln_post.weight": 1 + rnd(width, std=0.1), "visual.ln_post.bias": rnd(width),
             "token_embedding.weight": rnd(vocab, text_width),
             "ln_final.weight": 1 + rnd(text_width, std=0.1), "ln_final.bias": rnd(text_width)}
    for i in range(layers):
        state |= block(f"visual.transformer.resblocks.{i}", width)
    for i in range(text_layers):
        state |= block(f"transformer.resblocks.{i}", text_width)
    return state


# name -> (vision width, layers, heads, patch, image size, embed dim, text width, text layers, text heads); "tiny" is
# models.backbone's test CLIP in the same layout (with GELU where OpenAI's ViT-B/32 has QuickGELU)
ARCHITECTURES = {"ViT-B-32": (768, 12, 12, 32, 224, 512, 512, 12, 8), "tiny": (64, 4, 2, 16, 64, 64, 64, 4, 2)}


def released_state(dataset: str, architecture: str = "ViT-B-32", seed: int = 0,
                   context_tokens: int = 8) -> "OrderedDict[str, torch.Tensor]":
    """GenerateModel(...).state_dict() as DataParallel saves it: `module.` + prompt_learner, text_encoder,
    image_encoder, temporal_net, clip_model_ (in the order GenerateModel registers them)."""
    gen = torch.Generator().manual_seed(seed)
    width, layers, heads, patch, size, embed, text_width, text_layers, _ = ARCHITECTURES[architecture]
    clip = _openai_clip_state(width, layers, heads, patch, size, embed, text_width, text_layers, gen=gen)
    labels = DFER_CLIP_RELEASE_LABELS[dataset]
    prompts = [with_placeholders(DFER_CLIP_DESCRIPTORS[label], context_tokens) for label in labels]
    tokens = tokenize(prompts)
    embedding = F.embedding(tokens, clip["token_embedding.weight"])
    state = OrderedDict()
    state["prompt_learner.ctx"] = torch.randn(len(labels), context_tokens, text_width, generator=gen) * 0.02
    state["prompt_learner.token_prefix"] = embedding[:, :1].clone()
    state["prompt_learner.token_suffix"] = embedding[:, 1 + context_tokens:].clone()
    for key in ("positional_embedding", "text_projection", "ln_final.weight", "ln_final.bias"):
        state[f"text_encoder.{key}"] = clip[key]
    state |= {f"text_encoder.{k}": v for k, v in clip.items() if k.startswith("transformer.")}
    state |= {f"image_encoder.{k.removeprefix('visual.')}": v for k, v in clip.items() if k.startswith("visual.")}
    inner, mlp = 8 * 64, 1024

    def rnd(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    state["temporal_net.cls_token"] = torch.randn(1, 1, embed, generator=gen)
    state["temporal_net.pos_embedding"] = torch.randn(1, 17, embed, generator=gen)
    layer = "temporal_net.temporal_transformer.layers.0"
    state[f"{layer}.0.fn.norm.weight"] = 1 + rnd(embed, std=0.1)
    state[f"{layer}.0.fn.norm.bias"] = rnd(embed, std=0.1)
    state[f"{layer}.0.fn.fn.to_qkv.weight"] = rnd(3 * inner, embed, std=embed ** -0.5)
    state[f"{layer}.0.fn.fn.to_out.0.weight"] = rnd(embed, inner, std=inner ** -0.5)
    state[f"{layer}.0.fn.fn.to_out.0.bias"] = rnd(embed, std=0.1)
    state[f"{layer}.1.fn.norm.weight"] = 1 + rnd(embed, std=0.1)
    state[f"{layer}.1.fn.norm.bias"] = rnd(embed, std=0.1)
    state[f"{layer}.1.fn.fn.net.0.weight"] = rnd(mlp, embed, std=embed ** -0.5)
    state[f"{layer}.1.fn.fn.net.0.bias"] = rnd(mlp, std=0.1)
    state[f"{layer}.1.fn.fn.net.3.weight"] = rnd(embed, mlp, std=mlp ** -0.5)
    state[f"{layer}.1.fn.fn.net.3.bias"] = rnd(embed, std=0.1)
    state |= {f"clip_model_.{k}": v for k, v in clip.items()}  # the same tensors again, as in the release
    for k in list(state):
        if k.startswith("clip_model_.visual."):
            state[k] = state["image_encoder." + k.removeprefix("clip_model_.visual.")]
        elif k.startswith("clip_model_.") and "text_encoder." + k.removeprefix("clip_model_.") in state:
            state[k] = state["text_encoder." + k.removeprefix("clip_model_.")]
    return OrderedDict((f"module.{k}", v) for k, v in state.items())


def released_payload(state: dict, epochs: int = 50) -> dict:
    """The dict main.py's save_checkpoint writes (the optimizer's momentum buffers shrunk to one number each)."""
    optimizer = {"state": {i: {"momentum_buffer": torch.zeros(1)} for i in range(3)},
                 "param_groups": [{"lr": lr, "momentum": 0.9, "dampening": 0, "weight_decay": 1e-4,
                                   "nesterov": False, "maximize": False, "foreach": None, "differentiable": False,
                                   "fused": None, "initial_lr": lr, "params": [i]}
                                  for i, lr in enumerate((1e-2, 1e-5, 1e-3))]}
    recorder = RecorderMeter(epochs)
    recorder.epoch_accuracy[:3] = [[60.0, 55.5], [65.0, 58.0], [70.0, 59.0]]
    recorder.current_epoch = 3
    return {"epoch": 3, "state_dict": state, "best_acc": torch.tensor([71.25]), "optimizer": optimizer,
            "recorder": recorder}


def save_released(path: Path, payload: dict) -> Path:
    torch.save(payload, path, pickle_module=RELEASED_PICKLE)
    return path


# ---- the released model's forward pass, written from its code --------------------------------------------------

def _layer_norm(x, state, prefix, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps)


def _clip_block(x, s, p, heads, quick_gelu, mask=None):
    """OpenAI CLIP's ResidualAttentionBlock, x [N, L, W]."""
    h = _layer_norm(x, s, f"{p}.ln_1")
    n, length, w = h.shape
    q, k, v = F.linear(h, s[f"{p}.attn.in_proj_weight"], s[f"{p}.attn.in_proj_bias"]).chunk(3, dim=-1)
    q, k, v = (t.view(n, length, heads, w // heads).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(w // heads)
    if mask is not None:
        scores = scores + mask
    attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, w)
    x = x + F.linear(attn, s[f"{p}.attn.out_proj.weight"], s[f"{p}.attn.out_proj.bias"])
    h = F.linear(_layer_norm(x, s, f"{p}.ln_2"), s[f"{p}.mlp.c_fc.weight"], s[f"{p}.mlp.c_fc.bias"])
    h = h * torch.sigmoid(1.702 * h) if quick_gelu else F.gelu(h)
    return x + F.linear(h, s[f"{p}.mlp.c_proj.weight"], s[f"{p}.mlp.c_proj.bias"])


def _tanh_gelu(x):  # Temporal_Model.GELU
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def reference_probabilities(state: dict, dataset: str, faces: torch.Tensor, architecture: str = "ViT-B-32",
                            context_tokens: int = 8) -> torch.Tensor:
    """GenerateModel.forward(faces).softmax(-1) from the released state dict: faces [B, T, 3, H, W] in [0, 1]."""
    s = {k.removeprefix("module."): v.float() for k, v in state.items()}
    width, layers, heads, patch, size, embed, text_width, text_layers, text_heads = ARCHITECTURES[architecture]
    labels = DFER_CLIP_RELEASE_LABELS[dataset]
    quick_gelu = architecture != "tiny"
    with torch.no_grad():
        # image encoder (VisionTransformer.forward)
        b, t = faces.shape[:2]
        x = F.conv2d(faces.flatten(0, 1), s["image_encoder.conv1.weight"], stride=patch).flatten(2).transpose(1, 2)
        cls = s["image_encoder.class_embedding"].expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + s["image_encoder.positional_embedding"]
        x = _layer_norm(x, s, "image_encoder.ln_pre")
        for i in range(layers):
            x = _clip_block(x, s, f"image_encoder.transformer.resblocks.{i}", heads, quick_gelu)
        frames = _layer_norm(x[:, 0], s, "image_encoder.ln_post") @ s["image_encoder.proj"]
        # temporal net (Temporal_Transformer_Cls)
        x = torch.cat([s["temporal_net.cls_token"].expand(b, -1, -1), frames.view(b, t, -1)], 1)
        x = x + s["temporal_net.pos_embedding"][:, :t + 1]
        p = "temporal_net.temporal_transformer.layers.0"
        h = _layer_norm(x, s, f"{p}.0.fn.norm")
        q, k, v = F.linear(h, s[f"{p}.0.fn.fn.to_qkv.weight"]).chunk(3, dim=-1)
        q, k, v = (z.view(b, t + 1, 8, 64).transpose(1, 2) for z in (q, k, v))
        attn = ((q @ k.transpose(-2, -1) * 64 ** -0.5).softmax(-1) @ v).transpose(1, 2).reshape(b, t + 1, 512)
        x = x + F.linear(attn, s[f"{p}.0.fn.fn.to_out.0.weight"], s[f"{p}.0.fn.fn.to_out.0.bias"])
        h = _tanh_gelu(F.linear(_layer_norm(x, s, f"{p}.1.fn.norm"), s[f"{p}.1.fn.fn.net.0.weight"],
                                s[f"{p}.1.fn.fn.net.0.bias"]))
        x = x + F.linear(h, s[f"{p}.1.fn.fn.net.3.weight"], s[f"{p}.1.fn.fn.net.3.bias"])
        video = F.normalize(x[:, 0], dim=-1)
        # text (PromptLearner "end" + TextEncoder)
        prompts = torch.cat([s["prompt_learner.token_prefix"], s["prompt_learner.ctx"],
                             s["prompt_learner.token_suffix"]], 1)
        tokens = tokenize([with_placeholders(DFER_CLIP_DESCRIPTORS[label], context_tokens) for label in labels])
        x = prompts + s["text_encoder.positional_embedding"]
        mask = torch.full((77, 77), float("-inf")).triu(1)
        for i in range(text_layers):
            x = _clip_block(x, s, f"text_encoder.transformer.resblocks.{i}", text_heads, quick_gelu, mask)
        x = _layer_norm(x, s, "text_encoder.ln_final")
        text = x[torch.arange(len(labels)), tokens.argmax(-1)] @ s["text_encoder.text_projection"]
        text = F.normalize(text, dim=-1)
        return (video @ text.t() / 0.01).softmax(-1)
