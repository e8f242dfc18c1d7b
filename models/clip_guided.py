"""CLIP-guided DFER: CLIP-Guided Bidirectional Prompt and Semantic Supervision (papers/clip-guided-dfer.txt).

Inter-FIT (sec. 3.1) gives every frame an interaction token in every layer of CLIP's image encoder: a linear map of
the frame's class token, passed with the other frames' tokens through a Bi-LSTM and multi-head self-attention
(eq. 2), then attended to by the frame's own tokens (eq. 3). MSTA (sec. 3.2) max-pools the frame features at three
temporal scales, weighs the scales per channel and position with a softmax over scales (eqs. 4-7), and maps the
result to one video feature (eq. 8). BiEhPro (sec. 3.3) runs M blocks of bidirectional cross-attention between the
class-name text features and the video feature (eq. 10) and adds the results back with learnable weights alpha and
beta (eq. 11); the logits are the temperature-scaled cosines of the two (eq. 12). The image encoder is fine-tuned
with the new modules; the text encoder stays frozen (sec. 4.1). Choices where the paper is silent are listed in
docs/MODELS.md.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.backbone import (CLIPBackbone, onnx_exportable_attention, per_layer_token_hooks, replace_last_token,
                             token_projections, unit)
from models.losses import CrossEntropyObjective
from models.registry import build_clip_method, make_bundle_cfg, register_model
from models.text import CLASS_NAMES, tokenize


class InterFIT(nn.Module):
    """The interaction-token modules of every Inter-FIT layer (eq. 2): i_t = Linear(class token of frame t),
    I_hat = I + MHSA(LN(Bi-LSTM(I))) over the T frames of a clip. The Bi-LSTM has D/2 units per direction, so its
    output is D wide like the tokens."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.to_token = token_projections(width, layers)
        self.lstm = nn.ModuleList(nn.LSTM(width, width // 2, batch_first=True, bidirectional=True)
                                  for _ in range(layers))
        self.norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.attn = nn.ModuleList(nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(layers))

    def interaction(self, layer: int, cls: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Class tokens [B*T, W] of the previous layer -> interaction tokens i_hat [B*T, W]."""
        width = cls.shape[-1]
        tokens = self.to_token[layer](cls).view(-1, num_frames, width)  # I^(l), [B, T, W]
        h = self.norm[layer](self.lstm[layer](tokens)[0])
        tokens = tokens + self.attn[layer](h, h, h, need_weights=False)[0]
        return tokens.reshape(-1, width)

    def write(self, num_frames: int, layer: int, x: torch.Tensor) -> torch.Tensor:
        return replace_last_token(x, self.interaction(layer, x[:, 0], num_frames))


def pooled_length(num_frames: int, kernel: int, stride: int) -> int:
    return (num_frames - kernel) // stride + 1


class MSTA(nn.Module):
    """Multi-Scale Temporal Aggregation, frame features Z [B, T, D] -> video feature V [B, D] (eqs. 4-8).

    Scale i is a max pool over time with kernel ks_i and stride ss_i (5/3, 5/3, 7/1). The paper's T = 8 gives every
    scale length 2 (its "T/3"); for other T the scales differ (T = 16: 4, 4, 10), so a scale longer than the
    shortest is max-pooled again into that many even bins. FC_i (eq. 5) is a Linear over channels at each pooled
    position; the softmax of eq. 6 runs over the three scales; FC_V (eq. 8) maps the flattened D x T' result to D."""

    def __init__(self, dim: int, num_frames: int, kernels: Sequence[int] = (5, 5, 7),
                 strides: Sequence[int] = (3, 3, 1)):
        super().__init__()
        if len(kernels) != len(strides):
            raise ValueError("MSTA needs one stride per kernel")
        if num_frames < max(kernels):
            raise ValueError(f"MSTA's largest temporal kernel is {max(kernels)} frames; got {num_frames} frames")
        self.kernels, self.strides = tuple(kernels), tuple(strides)
        self.lengths = tuple(pooled_length(num_frames, k, s) for k, s in zip(kernels, strides))
        self.out_len = min(self.lengths)
        self.fc = nn.ModuleList(nn.Linear(dim, dim) for _ in self.kernels)
        self.fc_v = nn.Linear(dim * self.out_len, dim)

    def _rebin(self, y: torch.Tensor, length: int) -> torch.Tensor:
        """Max over `out_len` even bins of the last axis (adaptive max pooling, written with static slices so it
        exports to ONNX for any lengths)."""
        if length == self.out_len:
            return y
        bins = [y[..., (j * length) // self.out_len: -(-((j + 1) * length) // self.out_len)].amax(dim=-1)
                for j in range(self.out_len)]
        return torch.stack(bins, dim=-1)

    def scales(self, frames: torch.Tensor) -> list[torch.Tensor]:
        z = frames.transpose(1, 2)  # Z^Tr, [B, D, T]
        return [self._rebin(F.max_pool1d(z, k, s), n) for k, s, n in zip(self.kernels, self.strides, self.lengths)]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        scales = torch.stack(self.scales(frames))  # Z_i, [S, B, D, T']
        fused = scales.sum(dim=0).transpose(1, 2)  # Z_hat (eq. 4), [B, T', D]
        u = torch.stack([fc(fused).transpose(1, 2) for fc in self.fc])  # U_i (eq. 5), [S, B, D, T']
        weighted = (u.softmax(dim=0) * scales).sum(dim=0)  # eqs. 6-7, [B, D, T']
        return self.fc_v(weighted.flatten(1))  # eq. 8


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ratio: int = 4):
        super().__init__(nn.Linear(dim, dim * ratio), nn.GELU(), nn.Linear(dim * ratio, dim))


class BiEhProBlock(nn.Module):
    """One block of eq. 10: the text features query the video feature and the video feature queries the text
    features (both from the previous block's outputs), each followed by a residual FFN."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.text_attn = nn.MultiheadAttention(dim, heads, batch_first=True)  # CroAtt_{V->K}
        self.text_ffn = FeedForward(dim)
        self.video_attn = nn.MultiheadAttention(dim, heads, batch_first=True)  # CroAtt_{K->V}
        self.video_ffn = FeedForward(dim)

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # text [B, C, D], video [B, 1, D]
        text_bar = text + self.text_attn(text, video, video, need_weights=False)[0]
        video_bar = video + self.video_attn(video, text, text, need_weights=False)[0]
        return text_bar + self.text_ffn(text_bar), video_bar + self.video_ffn(video_bar)


class BiEhPro(nn.Module):
    """Bidirectional Enhanced Prompt: M blocks, then K_hat = K + alpha K~^(M), V_hat = V + beta V~^(M) (eq. 11).
    The text prompts depend on the video, so K_hat is per sample: [B, C, D]."""

    def __init__(self, dim: int, blocks: int = 2, heads: int = 8, alpha: float = 0.1, beta: float = 0.1):
        super().__init__()
        self.blocks = nn.ModuleList(BiEhProBlock(dim, heads) for _ in range(blocks))
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.beta = nn.Parameter(torch.tensor(float(beta)))

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = text.unsqueeze(0).expand(video.shape[0], -1, -1)  # K~^(0) = K, [B, C, D]
        v = video.unsqueeze(1)  # V~^(0) = V, [B, 1, D]
        for block in self.blocks:
            k, v = block(k, v)
        return text + self.alpha * k, video + self.beta * v.squeeze(1)


class CLIPGuidedDFER(CrossEntropyObjective, nn.Module):
    method = "clip_guided"

    def __init__(self, backbone: CLIPBackbone, labels: tuple[str, ...], *, num_frames: int = 16,
                 bi_blocks: int = 2, bi_heads: int = 8, alpha: float = 0.1, beta: float = 0.1,
                 msta_kernels: Sequence[int] = (5, 5, 7), msta_strides: Sequence[int] = (3, 3, 1),
                 dataset: str | None = None, name: str | None = None):
        super().__init__()
        dim, width = backbone.embed_dim, backbone.visual_width
        self.backbone = backbone
        self.labels = tuple(labels)
        self.num_frames = num_frames
        heads = backbone.clip.visual.transformer.resblocks[0].attn.num_heads  # the encoder's own head count
        self.interfit = InterFIT(width, backbone.visual_layers, heads)
        self.msta = MSTA(dim, num_frames, msta_kernels, msta_strides)
        self.biehpro = BiEhPro(dim, bi_blocks, bi_heads, alpha, beta)
        self.register_buffer("interaction_slot", torch.zeros(1, width), persistent=False)
        # eq. 9: K_j = TxtEnc(cls_j), the bare class name ("we directly input the labeled text", sec. 4.1)
        self.register_buffer("class_tokens", tokenize([CLASS_NAMES[label] for label in self.labels],
                                                      backbone.context_length), persistent=False)
        # sec. 4.1: the text encoder is kept fixed; the image encoder is fine-tuned inside Inter-FIT
        backbone.set_trainable(("text", "logit_scale"), False)
        backbone.set_trainable(("visual",), True)
        self.bundle_cfg = make_bundle_cfg(self.method, backbone, self.labels, dataset=dataset, name=name,
                                          num_frames=num_frames, needs_scene=False)

    def text_features(self) -> torch.Tensor:
        """K [C, d]: the class names through the frozen text encoder."""
        return self.backbone.encode_text(self.class_tokens).features

    def frame_features(self, faces: torch.Tensor) -> torch.Tensor:
        """Z [B, T, d]: each frame's class token after L Inter-FIT layers, through CLIP's ln_post and projection."""
        if not torch.jit.is_tracing() and faces.shape[1] != self.num_frames:
            raise ValueError(f"model built for {self.num_frames}-frame windows, got {faces.shape[1]} frames")
        hooks = per_layer_token_hooks(self.interaction_slot, self.backbone.visual_layers,
                                      partial(self.interfit.write, self.num_frames), self.num_frames)
        out = self.backbone.encode_image(faces.flatten(0, 1), hooks).features
        return out.view(-1, self.num_frames, out.shape[-1])

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        with onnx_exportable_attention():
            video = self.msta(self.frame_features(faces))  # V (eq. 8)
            text, video = self.biehpro(self.text_features(), video)  # K_hat [B, C, d], V_hat [B, d] (eq. 11)
            sim = torch.einsum("bd,bcd->bc", unit(video), unit(text))
            return self.backbone.logit_scale() * sim  # sim / tau (eq. 12)



@register_model
def clip_guided(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
                dataset: str | None = None, labels: tuple[str, ...] | None = None, **overrides) -> CLIPGuidedDFER:
    return build_clip_method(CLIPGuidedDFER, "clip_guided", backbone, num_classes, checkpoint, dataset, labels,
                             overrides)
