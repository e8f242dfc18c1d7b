"""DK-CLIP: Domain-Knowledge enhanced CLIP for DFER (papers/dk-clip.txt).

The hierarchical video encoder (sec. 3.3) splits the T frames into N snippets. Inside CLIP's image encoder (the
cross-frame attention module, CFAM), every frame gets a message token in every layer: a linear map of its class
token, attended across the frames of its snippet (eq. 3) and then by the frame's own tokens (eq. 4). Each snippet's
feature s_n is the mean of its frames' class tokens (eq. 5); the multi-snippet integration module (MSIM) runs
self-attention and an FFN over the N snippet features plus a temporal position embedding and averages them into the
video feature v (eq. 6). Text prompts join the class name with its AUs by "or" (sec. 3.4, Table 1); the
cross-modal attention module (CMAM) adds gamma * FFN(MHSA(c, z_bar)) of the frames' patch tokens to them (eqs. 7-8,
gamma initialised at 0.1). The noise reducing module (NRM, sec. 3.5) erases snippets whose normalised similarity
with v is below theta (eq. 9) from z_bar and from the local predictions; the class-aware consistency loss is
L_g + lambda (L_l + L_k) (eqs. 10-11). The patch embedding and the text encoder stay frozen (sec. 4.1). Choices
where the paper is silent are listed in docs/MODELS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from models.backbone import (CLIPBackbone, onnx_exportable_attention, per_layer_token_hooks, replace_last_token,
                             token_projections, unit)
from models.clip_guided import FeedForward
from models.losses import MethodObjective, float32_math, soft_nll
from models.registry import LossOutput, build_clip_method, make_bundle_cfg, register_model
from models.text import dk_clip_prompt, tokenize


class CrossFrameMessages(nn.Module):
    """The message-token modules of every CFAM layer (eq. 3): m_t = Linear(class token of frame t),
    m~ = m + MHSA(LN(m)) over the frames of one snippet (X-CLIP's cross-frame communication, restricted to a
    snippet)."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.to_message = token_projections(width, layers)
        self.norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.attn = nn.ModuleList(nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(layers))

    def message(self, layer: int, cls: torch.Tensor, snippet_len: int) -> torch.Tensor:
        """Class tokens [B*T, W] -> message tokens [B*T, W]; frames (b t) are contiguous, so snippets are too."""
        width = cls.shape[-1]
        m = self.to_message[layer](cls).view(-1, snippet_len, width)  # [B*N, T/N, W]
        h = self.norm[layer](m)
        m = m + self.attn[layer](h, h, h, need_weights=False)[0]
        return m.reshape(-1, width)

    def write(self, snippet_len: int, layer: int, x: torch.Tensor) -> torch.Tensor:
        return replace_last_token(x, self.message(layer, x[:, 0], snippet_len))


class MultiSnippetIntegration(nn.Module):
    """MSIM, eq. 6: v = AvgPool(FFN(MHSA(s + e_tem))) with a learned position per snippet; the MHSA + FFN is one
    pre-LN transformer block (open_clip's, as CLIP's own layers)."""

    def __init__(self, dim: int, snippets: int, layers: int = 1, heads: int = 8):
        super().__init__()
        self.positions = nn.Parameter(torch.empty(snippets, dim))
        nn.init.trunc_normal_(self.positions, std=0.02)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(dim, heads) for _ in range(layers))

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:  # [B, N, D] -> [B, D]
        x = snippets + self.positions
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=1)


class CrossModalAttention(nn.Module):
    """CMAM, eq. 8: c_hat = c + gamma * FFN(MHSA(c, z_bar)), the class texts querying the mean patch tokens.

    The patch tokens (image-encoder width) pass a LayerNorm and a linear map into the joint space; the queries are
    layer-normalised before the attention. gamma is a per-channel vector initialised at 0.1."""

    def __init__(self, dim: int, width: int, heads: int = 8, gamma: float = 0.1):
        super().__init__()
        self.visual_norm = nn.LayerNorm(width)
        self.visual_proj = nn.Linear(width, dim, bias=False)
        self.text_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = FeedForward(dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(gamma)))

    def forward(self, text: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        # text [C, D], patches z_bar [B, M, W] -> per-sample prompts [B, C, D]
        kv = self.visual_proj(self.visual_norm(patches))
        q = self.text_norm(text).unsqueeze(0).expand(patches.shape[0], -1, -1)
        return text + self.gamma * self.ffn(self.attn(q, kv, kv, need_weights=False)[0])


def snippet_scores(snippets: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """NRM's a* [B, N]: cosine of each snippet feature with the video feature, min-max normalised over the snippets,
    then a softmax over them (the authors' `normalize`; the paper only says "normalized")."""
    a = torch.einsum("bnd,bd->bn", unit(snippets), unit(video))
    low, high = a.amin(dim=1, keepdim=True), a.amax(dim=1, keepdim=True)
    return ((a - low) / (high - low).clamp_min(1e-6)).softmax(dim=1)


@dataclass
class DKCLIPOutput:
    logits: torch.Tensor  # global prediction p_g as logits, [B, C]
    local_logits: torch.Tensor  # one prediction per snippet, [B, N, C]
    scores: torch.Tensor  # a*, [B, N]
    keep: torch.Tensor  # 1 for snippets the NRM keeps, 0 for erased ones, [B, N]


class DKCLIP(MethodObjective, nn.Module):
    method = "dk_clip"

    def __init__(self, backbone: CLIPBackbone, labels: tuple[str, ...], *, snippets: int = 4, theta: float = 0.15,
                 lam: float = 1.0, gamma: float = 0.1, msim_layers: int = 1, num_frames: int = 16,
                 dataset: str | None = None, name: str | None = None):
        super().__init__()
        if num_frames % snippets:
            raise ValueError(f"{num_frames} frames do not split evenly into {snippets} snippets")
        dim, width = backbone.embed_dim, backbone.visual_width
        self.backbone = backbone
        self.labels = tuple(labels)
        self.num_frames, self.snippets, self.snippet_len = num_frames, snippets, num_frames // snippets
        self.theta, self.lam = theta, lam
        heads = backbone.clip.visual.transformer.resblocks[0].attn.num_heads
        joint_heads = max(1, dim // 64)
        self.messages = CrossFrameMessages(width, backbone.visual_layers, heads)
        self.msim = MultiSnippetIntegration(dim, snippets, msim_layers, joint_heads)
        self.cmam = CrossModalAttention(dim, width, joint_heads, gamma)
        self.register_buffer("message_slot", torch.zeros(1, width), persistent=False)
        prompts = [dk_clip_prompt(label) for label in self.labels]
        self.register_buffer("class_tokens", tokenize(prompts, backbone.context_length), persistent=False)
        # sec. 4.1: patch embedding and text encoder frozen; CFAM (the rest of the image encoder), MSIM, CMAM train
        backbone.set_trainable(("text", "logit_scale"), False)
        backbone.set_trainable(("visual",), True)
        backbone.clip.visual.conv1.requires_grad_(False)
        self.bundle_cfg = make_bundle_cfg(self.method, backbone, self.labels, dataset=dataset, name=name,
                                          num_frames=num_frames, needs_scene=False)

    def text_features(self) -> torch.Tensor:
        """c [C, d]: the AU-enriched prompts through the frozen text encoder."""
        return self.backbone.encode_text(self.class_tokens).features

    def encode_frames(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CFAM over the window: frame class-token features [B, T, d] and patch tokens z_t [B, T, M, W]."""
        if not torch.jit.is_tracing() and faces.shape[1] != self.num_frames:
            raise ValueError(f"model built for {self.num_frames}-frame windows, got {faces.shape[1]} frames")
        hooks = per_layer_token_hooks(self.message_slot, self.backbone.visual_layers,
                                      partial(self.messages.write, self.snippet_len), self.num_frames)
        out = self.backbone.encode_image(faces.flatten(0, 1), hooks)
        frames = out.features.view(-1, self.num_frames, out.features.shape[-1])
        patches = out.tokens[:, 1:]
        return frames, patches.reshape(-1, self.num_frames, patches.shape[1], patches.shape[2])

    def features(self, faces: torch.Tensor) -> DKCLIPOutput:
        frames, patches = self.encode_frames(faces)
        snippets = frames.view(-1, self.snippets, self.snippet_len, frames.shape[-1]).mean(dim=2)  # s_n (eq. 5)
        video = self.msim(snippets)  # v (eq. 6)
        scores = snippet_scores(snippets, video)  # a*
        keep = (scores >= self.theta).to(frames.dtype)  # eq. 9, as a mask (no data-dependent shapes)
        # z_bar* (eq. 7 over the T* kept frames); frame_keep [B, T, 1, 1]
        frame_keep = keep.unsqueeze(2).expand(-1, -1, self.snippet_len).reshape(-1, self.num_frames, 1, 1)
        z_bar = (patches * frame_keep).sum(dim=1) / frame_keep.sum(dim=1).clamp_min(1.0)
        text = self.cmam(self.text_features(), z_bar)  # c_hat [B, C, d] (eq. 8)
        text = unit(text)
        scale = self.backbone.logit_scale()
        logits = scale * torch.einsum("bd,bcd->bc", unit(video), text)  # eq. 1
        local = scale * torch.einsum("bnd,bcd->bnc", unit(snippets), text)
        return DKCLIPOutput(logits, local, scores, keep)

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        with onnx_exportable_attention():
            return self.features(faces).logits

    def outputs(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> DKCLIPOutput:
        return self.features(faces)

    def objective(self, out: DKCLIPOutput, targets: torch.Tensor) -> LossOutput:
        """Eq. 11: L = L_g + lambda (L_l + L_k). p_l (eq. 10) fuses the kept snippets' predictions with weights
        a* renormalised over them; L_k = KL(p_g || p_l). `targets`: class indices or probabilities (mixed and
        smoothed, as the authors' code feeds every term); L_g and L_l read them, L_k needs no labels. In float32:
        under fp16 the 1e-8 floor of p_l is 0, and with smoothed targets L_l and L_k were inf."""
        with float32_math(out.logits):
            logits, local_logits = out.logits.float(), out.local_logits.float()
            global_ce = F.cross_entropy(logits, targets if targets.dim() == 1 else targets.float())
            weights = out.scores.float() * out.keep.float()
            weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-6)
            p_local = torch.einsum("bn,bnc->bc", weights, local_logits.softmax(dim=-1))
            log_local = p_local.clamp_min(1e-8).log()
            local_ce = soft_nll(log_local, targets)
            kl = F.kl_div(log_local, logits.log_softmax(dim=-1), log_target=True, reduction="batchmean")
            total = global_ce + self.lam * (local_ce + kl)
        terms = {"L_g": global_ce, "L_l": local_ce, "L_k": kl}
        return LossOutput(total, terms, out.logits)


@register_model
def dk_clip(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
            dataset: str | None = None, labels: tuple[str, ...] | None = None, **overrides) -> DKCLIP:
    return build_clip_method(DKCLIP, "dk_clip", backbone, num_classes, checkpoint, dataset, labels,
                             overrides)
