"""DFER-CLIP: Prompting Visual-Language Models for DFER (Zhao and Patras, BMVC 2023; code zengqunzhao/DFER-CLIP, MIT).

The one method here whose authors released trained checkpoints (export/dfer_clip_release.py converts them). From
the released code:
- visual part: CLIP's image encoder, fine-tuned, encodes each of the T frames; a temporal transformer (one pre-norm
  block, 8 heads of 64, MLP 1024 with the tanh approximation of GELU) runs over the frame features behind a learned
  class token, with T + 1 learned positions; the class token's output is the video feature;
- text part: each class's prompt is 8 learnable context vectors of its own (class-specific context, CoOp) followed
  by the class's descriptor sentence (models.text.DFER_CLIP_DESCRIPTORS); the text encoder is frozen;
- logits: cosine similarity / 0.01; plain cross-entropy (main.py: nn.CrossEntropyLoss), the shared objective;
- input: pixels scaled to [0, 1] without CLIP's mean/std normalisation (so bundle_cfg declares mean 0, std 1).
"""

from __future__ import annotations

import torch
from torch import nn

from models.backbone import (CLIPBackbone, FrameEncoder, Prompts, TowerHooks, WindowHead, cosine_logits,
                             onnx_exportable_attention)
from models.losses import CrossEntropyObjective
from models.registry import build_clip_method, make_bundle_cfg, register_model
from models.text import DFER_CLIP_DESCRIPTORS, tokenize, with_placeholders

TEMPERATURE = 0.01  # fixed in the released code (output = cos / 0.01), not CLIP's learnable scale


class TemporalBlock(nn.Module):
    """One pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)). The query/key/value projection has no
    bias and its width is heads * head_dim (released `Attention`); the MLP uses tanh-approximated GELU."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.proj = nn.Linear(heads * head_dim, dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_dim, dim))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each [B, H, N, Dh]
        weights = (q @ k.transpose(-2, -1) * self.head_dim ** -0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class TemporalTransformer(nn.Module):
    """Frame features [B, T, D] -> video feature [B, D]: a learned class token before the frames, learned positions
    (T + 1 of them, for up to `num_frames` frames), the blocks, the class token's output."""

    def __init__(self, dim: int, num_frames: int = 16, depth: int = 1, heads: int = 8, head_dim: int = 64,
                 mlp_dim: int = 1024):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))  # N(0, 1), as released
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames + 1, dim))
        self.blocks = nn.ModuleList(TemporalBlock(dim, heads, head_dim, mlp_dim) for _ in range(depth))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        if not torch.jit.is_tracing() and t + 1 > self.pos_embedding.shape[1]:
            raise ValueError(f"temporal transformer has positions for {self.pos_embedding.shape[1] - 1} frames, "
                             f"got {t}")
        x = torch.cat([self.cls_token.expand(b, -1, -1), frames], dim=1) + self.pos_embedding[:, :t + 1]
        for block in self.blocks:
            x = block(x)
        return x[:, 0]


class DFERCLIP(CrossEntropyObjective, nn.Module):
    method = "dfer_clip"

    def __init__(self, backbone: CLIPBackbone, labels: tuple[str, ...], *, context_tokens: int = 8,
                 temporal_layers: int = 1, heads: int = 8, head_dim: int = 64, mlp_dim: int = 1024,
                 num_frames: int = 16, dataset: str | None = None, name: str | None = None):
        super().__init__()
        missing = [label for label in labels if label not in DFER_CLIP_DESCRIPTORS]
        if missing:
            raise ValueError(f"DFER-CLIP has no class descriptor for {missing}; known: {sorted(DFER_CLIP_DESCRIPTORS)}")
        self.backbone = backbone
        self.labels = tuple(labels)
        self.num_frames = num_frames
        dim = backbone.embed_dim
        self.temporal_net = TemporalTransformer(dim, num_frames, temporal_layers, heads, head_dim, mlp_dim)
        # class-specific context: context_tokens vectors per class, N(0, 0.02) as released (CoOp)
        self.class_context = nn.Parameter(torch.randn(len(self.labels), context_tokens, backbone.text_width) * 0.02)
        prompts = [with_placeholders(DFER_CLIP_DESCRIPTORS[label], context_tokens) for label in self.labels]
        self.register_buffer("class_tokens", tokenize(prompts, backbone.context_length), persistent=False)
        # released training: image encoder, temporal net and context learn; text encoder (and CLIP's scale) frozen
        backbone.set_trainable(("text", "logit_scale"), False)
        backbone.set_trainable(("visual",), True)
        self.bundle_cfg = make_bundle_cfg(self.method, backbone, self.labels, dataset=dataset, name=name,
                                          num_frames=num_frames, needs_scene=False)
        channels = self.bundle_cfg["channels"]
        self.bundle_cfg |= {"mean": [0.0] * channels, "std": [1.0] * channels}  # pixels in [0, 1], as trained

    def text_features(self) -> torch.Tensor:
        """[C, d]: [SOT] ctx_c,1..ctx_c,M descriptor_c [EOT] through the frozen text encoder."""
        hooks = TowerHooks(prompts=Prompts({0: self.class_context}))
        return self.backbone.encode_text(self.class_tokens, hooks).features

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, d]: every frame through the image encoder on its own."""
        return self.backbone.encode_image(frames).features

    def classify(self, frame_features: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> logits [B, C]: temporal transformer, then cosine with the class texts / 0.01."""
        return cosine_logits(self.temporal_net(frame_features), self.text_features(), 1.0 / TEMPERATURE)

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        with onnx_exportable_attention():
            b, t = faces.shape[:2]
            return self.classify(self.frame_features(faces.flatten(0, 1)).view(b, t, -1))

    def frame_split(self) -> tuple[nn.Module, nn.Module]:
        """Frames pass the image encoder independently, so a frame shared by overlapping windows is encoded once:
        (frame encoder [N,3,H,W] -> [N,d], window head [B,T,d] -> logits), head(encoder) == forward."""
        return FrameEncoder(self, "frame_features"), WindowHead(self, "classify")


@register_model
def dfer_clip(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
              dataset: str | None = None, labels: tuple[str, ...] | None = None, **overrides) -> DFERCLIP:
    return build_clip_method(DFERCLIP, "dfer_clip", backbone, num_classes, checkpoint, dataset, labels,
                             overrides)
