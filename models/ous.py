"""OUS: Overall Understanding of the Scene (papers/ous.txt).

Face and scene frames go through one frozen CLIP image encoder (sec. III-D). Each stream's frame features pass an
LSTM; the face stream then a trainable Frames Encoder, the scene stream a mean over frames (eq. 14). Convolutional
and fully connected layers align the two in one latent space (similarity loss, eq. 2). A Polarity Encoder reads the
scene's early-layer features (the first four blocks: colour, texture, ambiance) and is supervised with the class's
polarity (eq. 1). The Type Fusion Encoder (sec. III-B) attends from shared learnable queries over the polarity, face
and scene tokens. Its output is compared with learnable CoOp prompts [V]_1..[V]_M [CLASS] (sec. III-C) through the
frozen text encoder; the contrastive loss (eq. 3) classifies, and while the summed loss is above alpha all three
losses train (eq. 4). Choices where the paper is silent are listed in docs/MODELS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from models.backbone import (CLIPBackbone, FrameEncoder, Prompts, TowerHooks, WindowHead, cosine_logits,
                             onnx_exportable_attention)
from models.losses import MethodObjective, class_probabilities, float32_math
from models.registry import LossOutput, build_clip_method, make_bundle_cfg, register_model
from models.text import CLASS_NAMES, POLARITIES, class_polarity, tokenize, with_placeholders


class FramesEncoder(nn.Module):
    """f_f: temporal transformer over the face stream's LSTM outputs, [B, T, D] -> [B, T, D]. The LSTM before it
    already encodes frame order, so no position embedding is added."""

    def __init__(self, dim: int, layers: int = 1, heads: int = 8):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualAttentionBlock(dim, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class FaceAlignment(nn.Module):
    """The convolutional + fully connected alignment of the face tokens: Conv1d over time, then Linear."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D]
        return self.fc(self.conv(x.transpose(1, 2)).transpose(1, 2))


class PolarityEncoder(nn.Module):
    """Early-layer scene tokens [B*T, L, W] -> V_pol [B, D]: LayerNorm (the residual stream is unnormalised),
    mean over tokens and frames (ambiance is a whole-image statistic), then a two-layer MLP."""

    def __init__(self, width: int, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, dim))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """One frame's share: [N, L, W] -> [N, W] (per frame, so the service can cache it with the frame)."""
        return self.norm(tokens).mean(dim=1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:  # [B, T, W] -> [B, D]
        return self.mlp(pooled.mean(dim=1))


class CrossTypeAttention(nn.Module):
    """One TFE block, eqs. 5-10: LayerNorm on keys/values first, attention from the queries, LayerNorm, a ReLU MLP,
    LayerNorm. No residual sums: the paper's block is that chain."""

    def __init__(self, dim: int, heads: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_attn = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(tokens)
        out = self.norm_attn(self.attn(queries, kv, kv, need_weights=False)[0])
        return self.norm_out(self.mlp(out))


class TypeFusionEncoder(nn.Module):
    """Blocks of cross-type attention sharing one set of learnable queries Q_learn ~ N(0, 1).

    Every block queries with Q_learn; from the second block on, Q_learn is added to the previous block's output
    (as DETR re-adds its object queries at every decoder layer), so the blocks form a chain while the queries stay
    shared. The output queries are averaged into the fused feature."""

    def __init__(self, dim: int, blocks: int = 12, heads: int = 8, num_queries: int = 8):
        super().__init__()
        # N(0, 1): the keys and values the queries meet are LayerNorm outputs, zero mean and unit variance.
        self.queries = nn.Parameter(torch.randn(num_queries, dim))
        self.blocks = nn.ModuleList(CrossTypeAttention(dim, heads) for _ in range(blocks))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, S, D] -> [B, D]
        queries = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        x = queries
        for i, block in enumerate(self.blocks):
            x = block(queries if i == 0 else x + queries, tokens)
        return x.mean(dim=1)


@dataclass
class OUSFeatures:
    logits: torch.Tensor  # [B, C]
    face: torch.Tensor  # aligned face feature, mean over time, [B, D]
    scene: torch.Tensor  # aligned scene feature, [B, D]
    polarity: torch.Tensor  # V_pol, [B, D]


class OUS(MethodObjective, nn.Module):
    method = "ous"
    # The validation loss is eq. 4's L_global on every batch: the objective's total switches to L_contrast per batch
    # (alpha), which would make the plateau schedule and best.pt follow the switch rather than one steady loss.
    validation_term = "L_global"

    def __init__(self, backbone: CLIPBackbone, labels: tuple[str, ...], *, prompt_length: int = 64,
                 tfe_blocks: int = 12, tfe_heads: int = 8, num_queries: int = 8, polarity_layers: int = 4,
                 frames_layers: int = 1, alpha: float = 1.0, similarity_weight: float = 1.0,
                 polarity_weight: float = 1.0, contrastive_weight: float = 1.0, num_frames: int = 16,
                 polarity: tuple[int, ...] | None = None, dataset: str | None = None, name: str | None = None):
        super().__init__()
        dim, width = backbone.embed_dim, backbone.visual_width
        self.backbone = backbone
        self.labels = tuple(labels)
        self.alpha = alpha
        self.similarity_weight, self.polarity_weight = similarity_weight, polarity_weight
        self.contrastive_weight = contrastive_weight
        self.polarity_layer = min(polarity_layers, backbone.visual_layers) - 1  # index of the last early block
        self.face_lstm = nn.LSTM(dim, dim, batch_first=True)
        self.scene_lstm = nn.LSTM(dim, dim, batch_first=True)
        self.frames_encoder = FramesEncoder(dim, frames_layers, tfe_heads)
        self.face_align = FaceAlignment(dim)
        self.scene_align = nn.Linear(dim, dim)
        self.polarity_encoder = PolarityEncoder(width, dim)
        self.polarity_head = nn.Linear(dim, len(POLARITIES))
        self.tfe = TypeFusionEncoder(dim, tfe_blocks, tfe_heads, num_queries)
        # CoOp's unified context: M vectors shared by all classes, N(0, 0.02) as in CoOp
        self.prompt_context = nn.Parameter(torch.randn(prompt_length, backbone.text_width) * 0.02)
        prompts = [with_placeholders(f"{CLASS_NAMES[label]}.", prompt_length) for label in self.labels]
        self.register_buffer("class_tokens", tokenize(prompts, backbone.context_length), persistent=False)
        self.register_buffer("class_polarity", torch.tensor(polarity or class_polarity(self.labels)),
                             persistent=False)
        backbone.freeze_encoders()  # "The Vision Encoder remains frozen throughout"; the text encoder too (CoOp)
        self.bundle_cfg = make_bundle_cfg(self.method, backbone, self.labels, dataset=dataset, name=name,
                                          num_frames=num_frames, needs_scene=True)

    def text_features(self) -> torch.Tensor:
        """[C, d]: [V]_1..[V]_M [CLASS]. through the frozen text encoder."""
        hooks = TowerHooks(prompts=Prompts({0: self.prompt_context}))
        return self.backbone.encode_text(self.class_tokens, hooks).features

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, D + W]: each frame's CLIP feature and its pooled early-layer tokens (the polarity
        encoder's per-frame share). Face and scene frames pass the same frozen encoder independently, so a frame
        shared by overlapping windows is encoded once (`frame_split`)."""
        out = self.backbone.encode_image(frames, TowerHooks(taps=(self.polarity_layer,)))
        return torch.cat([out.features, self.polarity_encoder.pool(out.taps[self.polarity_layer])], dim=-1)

    def features(self, faces: torch.Tensor, scene: torch.Tensor | None) -> OUSFeatures:
        if scene is None:
            raise ValueError("OUS needs the scene window as well as the faces: forward(faces, scene)")
        b, t = faces.shape[:2]
        face = self.backbone.encode_image(faces.flatten(0, 1)).features.view(b, t, -1)
        return self.fuse(face, self.encode_frames(scene.flatten(0, 1)).view(b, t, -1))

    def fuse(self, face: torch.Tensor, scene: torch.Tensor) -> OUSFeatures:
        """Everything after the frozen encoder: face [B, T, >=D] (features first) and scene [B, T, D + W] from
        `encode_frames` -> logits and the aligned features the losses read."""
        d = self.backbone.embed_dim
        face_seq = self.frames_encoder(self.face_lstm(face[..., :d])[0])  # V_ft
        scene_vec = self.scene_lstm(scene[..., :d])[0].mean(dim=1)  # V_st, eq. 14
        face_tokens = self.face_align(face_seq)
        scene_token = self.scene_align(scene_vec)
        polarity = self.polarity_encoder(scene[..., d:])
        fused = self.tfe(torch.cat([polarity.unsqueeze(1), face_tokens, scene_token.unsqueeze(1)], dim=1))
        logits = cosine_logits(fused, self.text_features(), self.backbone.logit_scale())
        return OUSFeatures(logits, face_tokens.mean(dim=1), scene_token, polarity)

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        with onnx_exportable_attention():
            return self.features(faces, scene).logits

    def window_logits(self, face: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        """`frame_split`'s head: encoded face and scene windows [B, T, D+W] -> logits."""
        return self.fuse(face, scene).logits

    def frame_split(self) -> tuple[nn.Module, nn.Module]:
        """(frame encoder [N,C,H,W] -> [N, D+W] for face and scene frames alike, window head (face [B,T,D+W],
        scene [B,T,D+W]) -> logits), with head(encoder(faces), encoder(scene)) == forward(faces, scene)."""
        return FrameEncoder(self, "encode_frames"), WindowHead(self, "window_logits")

    def outputs(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> OUSFeatures:
        return self.features(faces, scene)

    def objective(self, out: OUSFeatures, targets: torch.Tensor) -> LossOutput:
        """Eq. 4 (each term weighted as the recipe says) while the global loss exceeds alpha, the contrastive loss
        alone once it is below. `targets`: class indices or probabilities; the polarity target is the class
        distribution summed per polarity (for a one-hot target, the class's polarity). In float32."""
        polarity_logits = self.polarity_head(out.polarity)
        with float32_math(out.logits):
            probs = class_probabilities(targets, len(self.labels))
            polarity_targets = probs @ F.one_hot(self.class_polarity, len(POLARITIES)).to(probs.dtype)
            similarity = (1 - F.cosine_similarity(out.face.float(), out.scene.float(), dim=-1)).mean()  # eq. 2
            polarity = F.cross_entropy(polarity_logits.float(), polarity_targets)  # eq. 1
            contrastive = F.cross_entropy(out.logits.float(), probs)  # output features against the class prompts
            total_all = (self.similarity_weight * similarity + self.polarity_weight * polarity
                         + self.contrastive_weight * contrastive)
            total = torch.where(total_all.detach() > self.alpha, total_all, contrastive)  # no host sync
        terms = {"L_similarity": similarity, "L_polarity": polarity, "L_contrast": contrastive, "L_global": total_all}
        return LossOutput(total, terms, out.logits)


@register_model
def ous(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
        dataset: str | None = None, labels: tuple[str, ...] | None = None, **overrides) -> OUS:
    return build_clip_method(OUS, "ous", backbone, num_classes, checkpoint, dataset, labels,
                             overrides)
