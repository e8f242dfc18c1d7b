"""DuSE: Dual-stream Semantic Enhancement (papers/duse.txt).

HTPC (sec. III-B) learns n textual prompt tokens for each of the first M layers of CLIP's text encoder and derives
the visual prompts of the same layers from them through one shared MLP (eq. 6); the first layer's visual prompts
get a sinusoidal frame position, so every frame of the window is prompted differently. LSEA (sec. III-C) runs
temporal self-attention over the frame features (eqs. 9-10), pools them with learned attention weights (eq. 11),
and mixes the pooled video feature with text features it attends to in N heads, weighted by beta (eqs. 12-13).
The class logits are the cosine similarities of that feature with the prompted class texts (eq. 1). Both CLIP
encoders stay frozen. Choices where the paper is silent are listed in docs/MODELS.md.
"""

from __future__ import annotations

import torch
from torch import nn

from models.backbone import (CLIPBackbone, Prompts, TowerHooks, cosine_logits, onnx_exportable_attention,
                             sinusoidal_positions, unit)
from models.losses import CrossEntropyObjective
from models.registry import build_clip_method, make_bundle_cfg, register_model
from models.text import described_class, tokenize, with_placeholders

DEPTH_FRACTIONS = {"shallow": None, "normal": 1 / 3, "deep": 2 / 3}


def resolve_prompt_depth(strategy: str | int, visual_layers: int, text_layers: int) -> int:
    """M, the number of prompted layers, from the paper's strategy names (sec. III-B): shallow = the input layer
    only, normal = a third of the encoder's layers, deep = two thirds. Counted on the visual encoder (the one the
    paper's strategies are about) and capped by the text encoder, since each visual prompt comes from a text one."""
    if isinstance(strategy, int):
        depth = strategy
    elif strategy in DEPTH_FRACTIONS:
        fraction = DEPTH_FRACTIONS[strategy]
        depth = 1 if fraction is None else max(1, round(visual_layers * fraction))
    else:
        raise ValueError(f"prompt depth must be an int or one of {sorted(DEPTH_FRACTIONS)}, not {strategy!r}")
    if not 1 <= depth <= min(visual_layers, text_layers):
        raise ValueError(f"prompt depth {depth} outside 1..{min(visual_layers, text_layers)}")
    return depth


class HTPC(nn.Module):
    """Hierarchical Temporal Prompt Cluster: text prompts P^T_1..P^T_M and visual prompts P^V_i = MLP(P^T_i)."""

    def __init__(self, num_tokens: int, depth: int, text_width: int, visual_width: int, max_frames: int = 64):
        super().__init__()
        self.num_tokens, self.depth = num_tokens, depth
        self.text_prompts = nn.Parameter(torch.randn(depth, num_tokens, text_width) * 0.02)
        # Eq. 6's ReLU(W P + b) as the hidden layer; a linear output layer, as the paper says for its regression.
        self.to_visual = nn.Sequential(
            nn.Linear(text_width, text_width), nn.ReLU(), nn.Linear(text_width, visual_width))
        self.register_buffer("frame_positions", sinusoidal_positions(max_frames, visual_width), persistent=False)

    def text_hooks(self) -> TowerHooks:
        return TowerHooks(prompts=Prompts({i: self.text_prompts[i] for i in range(self.depth)}))

    def visual_hooks(self, batch: int, num_frames: int) -> TowerHooks:
        visual = self.to_visual(self.text_prompts)  # [M, n, dV], one MLP shared by all layers
        # layer 1: the frame's sinusoidal position broadcast over the n tokens, frames flattened as (b t)
        first = visual[0].unsqueeze(0) + self.frame_positions[:num_frames].unsqueeze(1)  # [T, n, dV]
        first = first.unsqueeze(0).expand(batch, -1, -1, -1).reshape(-1, self.num_tokens, first.shape[-1])
        tokens = {0: first} | {i: visual[i] for i in range(1, self.depth)}
        # eq. 5: layers after the M-th process the image tokens alone
        return TowerHooks(prompts=Prompts(tokens, carry=False), num_frames=num_frames)


class TemporalSelfAttention(nn.Module):
    """Eqs. 9-10: V_m = Linear(softmax(Q K^T / sqrt(d_k)) V) over the t frame features."""

    def __init__(self, dim: int):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d]
        attn = (self.q(x) @ self.k(x).transpose(1, 2) * self.scale).softmax(dim=-1)
        return self.out(attn @ self.v(x))


class AttentionPooling(nn.Module):
    """Eq. 11: V_o = sum_i w_i V_m^(i), w = softmax over time of a learned score."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, d]
        weights = self.score(x).softmax(dim=1)
        return (weights * x).sum(dim=1)


class SemanticAggregation(nn.Module):
    """Eqs. 12-13: in each of N heads, T~_o = softmax(cos(V~_o, F~_T)) F~_T; V_g = mean_i(beta V~_o + (1-beta) T~_o).
    The softmax runs over the plain cosines, as sec. III-C says ("the cosine of the vectors. Then, Softmax"), so
    the semantic vector is a soft mixture of the class texts, not an argmax.

    One linear layer maps both V_o and F_T into the N heads ("a linear layer", sec. III-C), each head of the CLIP
    embedding width because V_g is compared with F_T in eq. 1. It starts as N identities plus small noise, so V_g
    starts in CLIP's joint space and the heads can drift apart."""

    def __init__(self, dim: int, heads: int = 4, beta: float = 0.7):
        super().__init__()
        self.heads, self.beta = heads, beta
        self.to_heads = nn.Linear(dim, heads * dim)
        with torch.no_grad():
            self.to_heads.weight.copy_(torch.eye(dim).repeat(heads, 1) + 0.02 * torch.randn(heads * dim, dim))
            self.to_heads.bias.zero_()

    def forward(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b, c, d = video.shape[0], text.shape[0], video.shape[-1]
        v = self.to_heads(video).view(b, self.heads, d)  # [B, N, d]
        t = self.to_heads(text).view(c, self.heads, d).transpose(0, 1)  # [N, C, d]
        sim = torch.einsum("bnd,ncd->bnc", unit(v), unit(t))
        semantic = torch.einsum("bnc,ncd->bnd", sim.softmax(dim=-1), t)
        return (self.beta * v + (1 - self.beta) * semantic).mean(dim=1)


class LSEA(nn.Module):
    """Latent Semantic Emotion Aggregator: frame features F_V [B, T, d] and class texts F_T [C, d] -> V_g [B, d]."""

    def __init__(self, dim: int, heads: int = 4, beta: float = 0.7):
        super().__init__()
        self.temporal = TemporalSelfAttention(dim)
        self.pool = AttentionPooling(dim)
        self.semantic = SemanticAggregation(dim, heads, beta)

    def forward(self, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.semantic(self.pool(self.temporal(frames)), text)


class DuSE(CrossEntropyObjective, nn.Module):
    method = "duse"

    def __init__(self, backbone: CLIPBackbone, labels: tuple[str, ...], *, num_tokens: int = 4,
                 prompt_depth: str | int = "deep", heads: int = 4, beta: float = 0.7, num_frames: int = 16,
                 dataset: str | None = None, name: str | None = None):
        super().__init__()
        self.backbone = backbone
        self.labels = tuple(labels)
        depth = resolve_prompt_depth(prompt_depth, backbone.visual_layers, backbone.text_layers)
        self.htpc = HTPC(num_tokens, depth, backbone.text_width, backbone.visual_width)
        self.lsea = LSEA(backbone.embed_dim, heads, beta)
        prompts = [with_placeholders(described_class(label), num_tokens) for label in self.labels]
        self.register_buffer("class_tokens", tokenize(prompts, backbone.context_length), persistent=False)
        backbone.freeze_encoders()  # "without the need for fine-tuning the encoder" (sec. IV-C; Table IV)
        self.bundle_cfg = make_bundle_cfg(self.method, backbone, self.labels, dataset=dataset, name=name,
                                          num_frames=num_frames, needs_scene=False)

    def text_features(self) -> torch.Tensor:
        """F_T [C, d]: the class prompts through the text encoder under HTPC's shallow and deep text prompts."""
        return self.backbone.encode_text(self.class_tokens, self.htpc.text_hooks()).features

    def frame_features(self, faces: torch.Tensor) -> torch.Tensor:
        """F_V [B, T, d]: every frame through the image encoder under HTPC's visual prompts."""
        b, t = faces.shape[:2]
        hooks = self.htpc.visual_hooks(b, t)
        return self.backbone.encode_image(faces.flatten(0, 1), hooks).features.view(b, t, -1)

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        with onnx_exportable_attention():
            text = self.text_features()
            video = self.lsea(self.frame_features(faces), text)
            return cosine_logits(video, text, self.backbone.logit_scale())



@register_model
def duse(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
         dataset: str | None = None, labels: tuple[str, ...] | None = None, **overrides) -> DuSE:
    return build_clip_method(DuSE, "duse", backbone, num_classes, checkpoint, dataset, labels,
                             overrides)
