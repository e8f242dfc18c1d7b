"""PE-CLIP: Parameter-Efficient fine-tuning of CLIP for DFER (papers/pe-clip.txt).

Both CLIP encoders stay frozen (sec. 4.2). Inside them (sec. 3.2-3.3):
- the Shared Adapter (ShA), a bottleneck adapter (down-projection by the reduction factor r, GELU, up-projection,
  residual; eqs. 2-6) after the MHSA of every block of both encoders, one per block and encoder;
- the Temporal Dynamic Adapter (TDA) after the MLP of every image-encoder block: down-projection, a GRU over the T
  frames, GELU, up-projection (eqs. 7-10), scaled per frame by ReLU(Linear(MLP output)) (eqs. 11-12);
- the Textual Adapter (TA), a bottleneck adapter after the MLP of every text-encoder block;
- MaPLe prompts: learnable text tokens in the first J layers of the text encoder, each mapped to the image encoder's
  prompt of the same layer by its own linear coupling function, with the class's AU description (Table 1) as the
  prompt's words (sec. 3.3).
The video feature (the frames' class-token features, averaged over time) is classified by the cosine with the class
texts (sec. 3.4). Choices where the paper is silent are listed in docs/MODELS.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.backbone import (BottleneckAdapter, CLIPBackbone, Prompts, TowerHooks, cosine_logits,
                             onnx_exportable_attention)
from models.losses import CrossEntropyObjective
from models.registry import build_clip_method, make_bundle_cfg, register_model
from models.text import CLASS_NAMES, PE_CLIP_DESCRIPTIONS, pe_clip_prompt, tokenize, with_placeholders


class TemporalDynamicAdapter(nn.Module):
    """TDA (eqs. 7-12), put after a block's MLP. The MLP output [B*T, L, W] is regrouped so that each token position
    of a clip is a sequence over its T frames; h = GELU(GRU(down(H_MLP))); H_scaled = up(h) * ReLU(Linear(H_MLP)),
    one non-negative scale per frame and token; the adapter returns H_MLP + H_scaled (the block then adds its
    residual). The up-projection starts at zero, so a new adapter is the identity; the scale starts at 1
    (zero weight, bias 1), so ReLU passes gradient from the first step."""

    def __init__(self, width: int, reduction: int = 8):
        super().__init__()
        hidden = width // reduction
        self.down = nn.Linear(width, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, width)
        self.scale = nn.Linear(width, 1)
        for p in (self.up.weight, self.up.bias, self.scale.weight):
            nn.init.zeros_(p)
        nn.init.ones_(self.scale.bias)

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        if num_frames is None:
            raise ValueError("the Temporal Dynamic Adapter needs num_frames to regroup frames into clips")
        length, width = x.shape[1], x.shape[2]
        seq = x.reshape(-1, num_frames, length, width).transpose(1, 2).reshape(-1, num_frames, width)  # [B*L, T, W]
        h = self.act(self.gru(self.down(seq))[0])  # eqs. 7-9
        scaled = self.up(h) * F.relu(self.scale(seq))  # eqs. 10-12
        return x + scaled.reshape(-1, length, num_frames, width).transpose(1, 2).reshape(-1, length, width)


class MaPLePrompts(nn.Module):
    """MaPLe's multi-modal prompts: text tokens P_t for the first J text layers (layer 0 replaces the placeholder
    words, deeper ones the placeholders' hidden states) and visual tokens P_v = F_i(P_t,i) from one linear coupling
    function per layer, appended after the patch tokens and carried on after layer J (MaPLe)."""

    def __init__(self, num_tokens: int, depth: int, text_width: int, visual_width: int):
        super().__init__()
        self.num_tokens, self.depth = num_tokens, depth
        self.text_prompts = nn.Parameter(torch.randn(depth, num_tokens, text_width) * 0.02)
        self.couple = nn.ModuleList(nn.Linear(text_width, visual_width) for _ in range(depth))

    def text_hooks(self) -> TowerHooks:
        return TowerHooks(prompts=Prompts({i: self.text_prompts[i] for i in range(self.depth)}))

    def visual_hooks(self, num_frames: int, ln_pre: nn.Module | None = None) -> TowerHooks:
        """MaPLe appends the layer-0 visual prompts to the embedded patches before the image encoder's ln_pre; the
        backbone appends prompts after it, and ln_pre normalises each token on its own, so passing the layer-0
        prompts through `ln_pre` here is exactly MaPLe's order. Deeper prompts replace hidden states (no norm)."""
        tokens = {i: couple(self.text_prompts[i]) for i, couple in enumerate(self.couple)}
        if ln_pre is not None:
            tokens[0] = ln_pre(tokens[0])
        return TowerHooks(prompts=Prompts(tokens, carry=True), num_frames=num_frames)


def au_prompt(label: str) -> str:
    """Table 1's AU-based description in place of the class name; classes the table does not cover (MAFW's compound
    classes) keep their class name."""
    return pe_clip_prompt(label) if label in PE_CLIP_DESCRIPTIONS else f"{CLASS_NAMES[label]}."


class PECLIP(CrossEntropyObjective, nn.Module):
    method = "pe_clip"

    def __init__(self, backbone: CLIPBackbone, labels: tuple[str, ...], *, reduction: int = 8, num_tokens: int = 2,
                 prompt_depth: int = 9, num_frames: int = 16, dataset: str | None = None, name: str | None = None):
        super().__init__()
        self.backbone = backbone
        self.labels = tuple(labels)
        depth = min(prompt_depth, backbone.visual_layers, backbone.text_layers)
        self.prompts = MaPLePrompts(num_tokens, depth, backbone.text_width, backbone.visual_width)
        act = nn.GELU  # eq. 4
        for layer in range(backbone.visual_layers):
            backbone.add_adapter("visual", layer, "attn", BottleneckAdapter(backbone.visual_width, reduction, act))
            backbone.add_adapter("visual", layer, "mlp", TemporalDynamicAdapter(backbone.visual_width, reduction))
        for layer in range(backbone.text_layers):
            backbone.add_adapter("text", layer, "attn", BottleneckAdapter(backbone.text_width, reduction, act))
            backbone.add_adapter("text", layer, "mlp", BottleneckAdapter(backbone.text_width, reduction, act))
        prompts = [with_placeholders(au_prompt(label), num_tokens) for label in self.labels]
        self.register_buffer("class_tokens", tokenize(prompts, backbone.context_length), persistent=False)
        backbone.freeze_encoders()  # "only the adapter and prompt learner parameters ... are fine-tuned" (sec. 4.2)
        self.bundle_cfg = make_bundle_cfg(self.method, backbone, self.labels, dataset=dataset, name=name,
                                          num_frames=num_frames, needs_scene=False)

    def text_features(self) -> torch.Tensor:
        """f_t [C, d] (eq. 13): AU prompts under MaPLe's text prompts, through the frozen encoder with ShA and TA."""
        return self.backbone.encode_text(self.class_tokens, self.prompts.text_hooks()).features

    def frame_features(self, faces: torch.Tensor) -> torch.Tensor:
        """[B, T, d] (eq. 14): every frame under MaPLe's visual prompts, through the frozen encoder with ShA and TDA."""
        t = faces.shape[1]
        out = self.backbone.encode_image(faces.flatten(0, 1), self.prompts.visual_hooks(t, self.backbone.clip.visual.ln_pre)).features
        return out.view(-1, t, out.shape[-1])

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        with onnx_exportable_attention():
            video = self.frame_features(faces).mean(dim=1)  # f_v
            return cosine_logits(video, self.text_features(), self.backbone.logit_scale())  # eq. 1



@register_model
def pe_clip(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
            dataset: str | None = None, labels: tuple[str, ...] | None = None, **overrides) -> PECLIP:
    return build_clip_method(PECLIP, "pe_clip", backbone, num_classes, checkpoint, dataset, labels,
                             overrides)
