"""The one CLIP backbone every method uses: open_clip's CLIP plus the hooks that the DFER papers need.

`build_clip` makes an open_clip CLIP by name (ViT-B-32, ViT-B-16, ViT-L-14, or `tiny` for tests) from a local
checkpoint file, never from a hub. `CLIPBackbone` runs its two towers block by block through `run_tower`, which
composes open_clip's own residual blocks (no copy of its transformer) and adds, per call or per model:

- prompt tokens injected before chosen layers (`Prompts`): appended after the patch tokens on the visual side
  (VPT, MaPLe), written over placeholder tokens after SOT on the text side (CoOp, MaPLe), shallow (layer 0) or deep;
- adapters after a block's attention or MLP (`add_adapter`), e.g. PE-CLIP's shared and temporal adapters;
- token hooks that rewrite the sequence before a layer, and `per_layer_token_hooks` for one extra token per image
  recomputed before every block (CLIP-guided DFER's interaction tokens, DK-CLIP's message tokens);
- intermediate layer outputs (`taps`), e.g. OUS's early-layer polarity features;
- freezing by parameter group (`parameter_groups`, `set_trainable`).
"""

from __future__ import annotations

import logging
import math
from functools import partial
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Mapping, Protocol, Sequence

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import QuickGELU, ResidualAttentionBlock, text_global_pool
from torch import nn

from models.clip_weights import Activation, resolve_activation

log = logging.getLogger(__name__)

BACKBONES = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "tiny")
CLIP_MEAN = tuple(open_clip.OPENAI_DATASET_MEAN)
CLIP_STD = tuple(open_clip.OPENAI_DATASET_STD)
PARAMETER_GROUPS = ("visual", "text", "logit_scale", "adapters")
Tower = Literal["visual", "text"]
Site = Literal["attn", "mlp"]


class CheckpointNotFoundError(FileNotFoundError):
    pass


def tiny_clip(embed_dim: int = 64, layers: int = 4, quick_gelu: bool = False) -> CLIP:
    """A few-layer, 64-wide CLIP that builds in milliseconds: for tests, never for results."""
    return CLIP(
        embed_dim=embed_dim,
        vision_cfg=CLIPVisionCfg(layers=layers, width=64, head_width=32, patch_size=16, image_size=64),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=layers),
        quick_gelu=quick_gelu,
    )


def _missing_checkpoint(name: str, checkpoint: str) -> CheckpointNotFoundError:
    tags = open_clip.list_pretrained_tags_by_model(name) if name != "tiny" else []
    how = (f"open_clip's pretrained tags for {name} are {', '.join(tags)}. Fetch one once on a machine with "
           f"network, e.g. python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{tags[0]}', "
           "cache_dir='checkpoints')\", then pass the downloaded .safetensors/.bin file as checkpoint"
           if tags else "save one with torch.save(clip.state_dict(), path)")
    return CheckpointNotFoundError(
        f"CLIP checkpoint {checkpoint!r} for backbone {name} is not a file. Weights are read from a local file, "
        f"never downloaded at run time: {how}. Use checkpoint=None for random weights (tests, FLOP counts).")


def build_clip(name: str, checkpoint: str | Path | None = None, *, quick_gelu: bool | None = None,
               clip_tag: str | None = None) -> CLIP:
    """open_clip CLIP `name` with weights from the local file `checkpoint` (None: random weights).

    OpenAI's weights were trained with QuickGELU, which open_clip's plain ViT configs do not use: `quick_gelu=None`
    settles it from the file (models/clip_weights.py: OpenAI's released files by sha256, or open_clip's pretrained
    `clip_tag`) and raises ActivationUnknownError for any other file."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise _missing_checkpoint(name, str(checkpoint))
    if quick_gelu is None:
        quick_gelu = resolve_activation(name, checkpoint, tag=clip_tag).quick_gelu
    if name == "tiny":
        clip = tiny_clip(quick_gelu=quick_gelu)
        if checkpoint is not None:
            open_clip.load_checkpoint(clip, str(checkpoint))
        return clip.eval()
    if checkpoint is None:
        log.warning("backbone %s built with random weights (checkpoint=None)", name)
    clip = open_clip.create_model(name, pretrained=str(checkpoint) if checkpoint else None,
                                  force_quick_gelu=quick_gelu, require_pretrained=checkpoint is not None)
    return clip.eval()


class _RandomWeightWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "built with random weights" not in message and "initialized randomly" not in message


@contextmanager
def weights_loaded_next():
    """For building an architecture whose every tensor is loaded right after (a training checkpoint, a released
    file): the 'random weights' warnings of our backbone and of open_clip would only mislead there."""
    quiet = _RandomWeightWarnings()
    loggers = (log, logging.getLogger())  # open_clip warns through the root logger
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


@contextmanager
def unfused_attention():
    """Keep nn.MultiheadAttention off its inference fast path (`_native_multi_head_attention`, taken when no
    weight needs a gradient) for the duration: that fused op has no ONNX symbolic and no FLOP formula."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


@contextmanager
def onnx_exportable_attention():
    """`unfused_attention` while torch.onnx traces, nothing otherwise. Every method's forward runs inside it, so
    torch.onnx.export(model, ...) works without a flag."""
    if torch.onnx.is_in_onnx_export():
        with unfused_attention():
            yield
    else:
        yield


# ---- hooks --------------------------------------------------------------------------------------------------------

class Adapter(Protocol):
    """A module put after a block's attention or MLP. It receives that sub-layer's output [N, L, W] (before the
    block's residual sum) and returns its replacement, so it owns its own residual; `num_frames` lets temporal
    adapters fold N back into [B, T]."""

    def __call__(self, x: torch.Tensor, num_frames: int | None) -> torch.Tensor: ...


class BottleneckAdapter(nn.Module):
    """x + up(act(down(x))), up zero-initialised so a new adapter starts as the identity (Houlsby, AIM)."""

    def __init__(self, width: int, reduction: int = 8, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.down = nn.Linear(width, width // reduction)
        self.act = act()
        self.up = nn.Linear(width // reduction, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


@dataclass
class Prompts:
    """Prompt tokens for one tower: layer index -> tokens [n, W] (shared by all sequences) or [N, n, W].

    Layer 0 is shallow prompting (into the input of the first block); a prompt at layer i > 0 replaces the tokens
    the previous layers made at those positions (deep prompting). Visual prompts are appended after the patch
    tokens; after the last prompted layer they are carried on through the remaining blocks (`carry=True`, MaPLe)
    or dropped (`carry=False`, DuSE's eq. 5). Text prompts overwrite the embeddings of the placeholder
    tokens that follow SOT, so the EOT position that CLIP pools stays where the tokenizer put it."""

    tokens: Mapping[int, torch.Tensor]
    carry: bool = True


@dataclass
class TowerHooks:
    prompts: Prompts | None = None
    taps: Sequence[int] = ()  # layer indices whose output sequences to return (appended prompts removed)
    # sequence -> sequence of the same length, applied before the block of that index (after its prompts)
    token_hooks: Mapping[int, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    num_frames: int | None = None  # passed to adapters


@dataclass
class TowerOutput:
    features: torch.Tensor  # pooled and projected: [N, embed_dim]
    taps: dict[int, torch.Tensor]  # layer index -> [N, L, W]
    tokens: torch.Tensor  # final sequence after the tower's last LayerNorm, before pooling, [N, L, W]


def _batched(tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tokens.unsqueeze(0).expand(like.shape[0], -1, -1) if tokens.dim() == 2 else tokens


def _overwrite_after_sot(x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """x [N, L, W] with positions 1..n (the placeholders) replaced by prompt [n, W] or [N, n, W]."""
    p = _batched(prompt, x)
    return torch.cat([x[:, :1], p, x[:, 1 + p.shape[1]:]], dim=1)


def _block(blk: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None, attn_adapter: nn.Module | None,
           mlp_adapter: nn.Module | None, num_frames: int | None) -> torch.Tensor:
    if attn_adapter is None and mlp_adapter is None:
        return blk(x, attn_mask=attn_mask)
    # open_clip's ResidualAttentionBlock.forward, opened up at the two adapter sites
    h = blk.attention(blk.ln_1(x), attn_mask=attn_mask)
    if attn_adapter is not None:
        h = attn_adapter(h, num_frames)
    x = x + blk.ls_1(h)
    h = blk.mlp(blk.ln_2(x))
    if mlp_adapter is not None:
        h = mlp_adapter(h, num_frames)
    return x + blk.ls_2(h)


def run_tower(blocks: Sequence[nn.Module], x: torch.Tensor, *, mode: Literal["append", "overwrite"],
              hooks: TowerHooks | None = None, adapters: Mapping[tuple[int, str], nn.Module] | None = None,
              attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Run `blocks` over x [N, L, W] with prompts, token hooks, adapters and taps; returns (x, taps) with any
    appended prompt tokens removed. All branching is on Python values, so the graph traces for ONNX."""
    hooks = hooks or TowerHooks()
    adapters = adapters or {}
    prompts = dict(hooks.prompts.tokens) if hooks.prompts is not None else {}
    carry = hooks.prompts.carry if hooks.prompts is not None else True
    image_len = x.shape[1]  # sequence length without appended prompts
    appended = False  # a Python flag, so tracing never branches on a (traced) length
    taps: dict[int, torch.Tensor] = {}
    for i, blk in enumerate(blocks):
        if i in prompts:
            p = _batched(prompts[i], x).to(x.dtype)
            if mode == "append":
                x = torch.cat([x[:, :image_len], p], dim=1)
                appended = True
            else:
                x = _overwrite_after_sot(x, p)
        elif appended and not carry:
            x = x[:, :image_len]
            appended = False
        if i in hooks.token_hooks:
            x = hooks.token_hooks[i](x)
        x = _block(blk, x, attn_mask, adapters.get((i, "attn")), adapters.get((i, "mlp")), hooks.num_frames)
        if i in hooks.taps:
            taps[i] = x[:, :image_len] if appended else x
    return (x[:, :image_len] if appended else x), taps


# ---- the backbone -------------------------------------------------------------------------------------------------

class CLIPBackbone(nn.Module):
    """open_clip CLIP with per-call hooks (prompts, token hooks, taps) and per-model adapters.

    Parameter groups: `visual` (image tower), `text` (token and position embeddings, text transformer, final LN,
    projection), `logit_scale`, `adapters`. They partition the backbone's parameters."""

    def __init__(self, clip: CLIP, name: str):
        super().__init__()
        visual = clip.visual
        if getattr(visual, "attn_pool", None) is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
            raise ValueError("CLIPBackbone supports ViTs with class-token pooling (OpenAI CLIP layout)")
        if getattr(clip, "text_pool_type", "argmax") != "argmax":
            raise ValueError("CLIPBackbone supports text towers pooled at the EOT token")
        self.clip = clip
        self.name = name
        self.adapters = nn.ModuleDict()  # key "visual.3.attn" -> module (ModuleDict keys may not contain '.')
        # create_backbone replaces it with how the activation was decided
        self.activation = Activation(self.quick_gelu, "as built")

    # -- shape facts
    @property
    def quick_gelu(self) -> bool:
        """Whether the towers' MLPs run QuickGELU (read from the modules, not from how they were asked for)."""
        return any(isinstance(m, QuickGELU) for m in self.clip.modules())

    @property
    def embed_dim(self) -> int:
        return self.clip.visual.output_dim

    @property
    def visual_width(self) -> int:
        return self.clip.visual.conv1.out_channels

    @property
    def text_width(self) -> int:
        return self.clip.transformer.width

    @property
    def visual_layers(self) -> int:
        return len(self.clip.visual.transformer.resblocks)

    @property
    def text_layers(self) -> int:
        return len(self.clip.transformer.resblocks)

    @property
    def image_size(self) -> int:
        return self.clip.visual.image_size[0]

    def set_image_size(self, size: int) -> None:
        """Run the image tower on size x size inputs: the patch grid changes and the position embeddings are
        interpolated (open_clip's resize_pos_embed, bicubic). Fewer patches cost less (a ViT-B/16 at 160 px has
        101 tokens instead of 197); a model trained at another size then only approximates itself, so export
        reports its agreement with the original."""
        v = self.clip.visual
        patch = v.conv1.kernel_size[0]
        if size <= 0 or size % patch:
            raise ValueError(f"image size must be a positive multiple of the patch size {patch}, got {size}")
        if size == self.image_size:
            return
        state = {"visual.positional_embedding": v.positional_embedding.detach()}
        v.grid_size = (size // patch, size // patch)
        v.image_size = (size, size)
        open_clip.model.resize_pos_embed(state, self.clip)
        v.positional_embedding = nn.Parameter(state["visual.positional_embedding"],
                                              requires_grad=v.positional_embedding.requires_grad)

    @property
    def context_length(self) -> int:
        return self.clip.context_length

    def logit_scale(self) -> torch.Tensor:
        """CLIP's temperature as a multiplier (exp of the stored log), capped at 100 as in CLIP's training."""
        return self.clip.logit_scale.exp().clamp(max=100.0)

    # -- adapters
    def add_adapter(self, tower: Tower, layer: int, site: Site, module: nn.Module) -> nn.Module:
        """Put `module` (an `Adapter`) after the attention or MLP of block `layer` of `tower`; it is saved,
        trained and frozen with the backbone's `adapters` group."""
        blocks = self._blocks(tower)
        if not 0 <= layer < len(blocks):
            raise IndexError(f"{tower} tower has {len(blocks)} layers, no layer {layer}")
        if site not in ("attn", "mlp"):
            raise ValueError(f"adapter site must be 'attn' or 'mlp', not {site!r}")
        if type(blocks[layer]) is not ResidualAttentionBlock:
            raise TypeError("adapters need open_clip's default ResidualAttentionBlock")
        self.adapters[self._adapter_key(tower, layer, site)] = module
        return module

    @staticmethod
    def _adapter_key(tower: str, layer: int, site: str) -> str:
        return f"{tower}_{layer}_{site}"

    def _tower_adapters(self, tower: str) -> dict[tuple[int, str], nn.Module]:
        found = {}
        for key, module in self.adapters.items():
            t, layer, site = key.rsplit("_", 2)
            if t == tower:
                found[(int(layer), site)] = module
        return found

    def _blocks(self, tower: str) -> nn.ModuleList:
        return self.clip.visual.transformer.resblocks if tower == "visual" else self.clip.transformer.resblocks

    # -- towers
    def encode_image(self, images: torch.Tensor, hooks: TowerHooks | None = None) -> TowerOutput:
        """images [N, 3, H, W] -> projected class-token features [N, embed_dim] (plus taps)."""
        v = self.clip.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)  # [N, grid*grid, W]
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(v.patch_dropout(x))
        x, taps = run_tower(v.transformer.resblocks, x, mode="append", hooks=hooks,
                            adapters=self._tower_adapters("visual"))
        x = v.ln_post(x)
        pooled = x[:, 0] @ v.proj if v.proj is not None else x[:, 0]
        return TowerOutput(pooled, taps, x)

    def embed_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """token ids [C, L] -> token embeddings [C, L, W] (before position embedding)."""
        return self.clip.token_embedding(tokens)

    def encode_text(self, tokens: torch.Tensor, hooks: TowerHooks | None = None,
                    embeddings: torch.Tensor | None = None) -> TowerOutput:
        """token ids [C, L] -> projected EOT features [C, embed_dim]. `embeddings` replaces the token embeddings
        (CoOp-style prompt learners build them); `tokens` still marks where EOT is."""
        c = self.clip
        x = self.embed_text(tokens) if embeddings is None else embeddings
        if hooks is not None and hooks.prompts is not None and 0 in hooks.prompts.tokens:
            # Shallow text prompts stand in for word embeddings, so like the words they replace they get CLIP's
            # position embedding (CoOp, MaPLe); deep ones overwrite hidden states inside run_tower.
            deep = {i: p for i, p in hooks.prompts.tokens.items() if i != 0}
            x = _overwrite_after_sot(x, hooks.prompts.tokens[0].to(x.dtype))
            hooks = replace(hooks, prompts=Prompts(deep, hooks.prompts.carry))
        x = x + c.positional_embedding.to(x.dtype)
        x, taps = run_tower(c.transformer.resblocks, x, mode="overwrite", hooks=hooks,
                            adapters=self._tower_adapters("text"), attn_mask=c.attn_mask)
        x = c.ln_final(x)
        pooled = text_global_pool(x, tokens, "argmax")
        projection = c.text_projection
        if projection is not None:
            pooled = projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection
        return TowerOutput(pooled, taps, x)

    # -- freezing
    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in PARAMETER_GROUPS}
        for name, p in self.named_parameters():
            if name.startswith("clip.visual."):
                groups["visual"].append((name, p))
            elif name.startswith("clip.logit_"):
                groups["logit_scale"].append((name, p))
            elif name.startswith("adapters."):
                groups["adapters"].append((name, p))
            else:
                groups["text"].append((name, p))
        return groups

    def set_trainable(self, groups: Sequence[str], trainable: bool) -> None:
        known = self.parameter_groups()
        for group in groups:
            if group not in known:
                raise KeyError(f"unknown parameter group {group!r}; known: {sorted(known)}")
            for _, p in known[group]:
                p.requires_grad_(trainable)

    def freeze_encoders(self) -> None:
        """Freeze CLIP itself (both towers and the temperature); adapters stay as they are."""
        self.set_trainable(("visual", "text", "logit_scale"), False)

    def train(self, mode: bool = True) -> "CLIPBackbone":
        # Frozen towers stay in eval mode (no dropout / patch dropout) while the method trains around them.
        super().train(mode)
        frozen = not any(p.requires_grad for p in self.clip.parameters())
        if frozen:
            self.clip.eval()
        return self


def create_backbone(name: str, checkpoint: str | Path | None = None, *, quick_gelu: bool | None = None,
                    clip_tag: str | None = None) -> CLIPBackbone:
    """The backbone, with `activation` (QuickGELU or GELU, and how that was decided) logged and kept on it."""
    activation = resolve_activation(name, checkpoint, quick_gelu=quick_gelu, tag=clip_tag)
    if checkpoint is not None:
        log.info("CLIP %s from %s: activation %s", name, checkpoint, activation.describe())
    backbone = CLIPBackbone(build_clip(name, checkpoint, quick_gelu=activation.quick_gelu), name)
    backbone.activation = activation
    return backbone


class FrameEncoder(nn.Module):
    """The per-frame half of a method whose frames pass the image encoder independently (`frame_split`, which
    export writes as frame_encoder.onnx): frames [N, 3, H, W] -> features [N, F] by the method's `encode`."""

    def __init__(self, model: nn.Module, encode: str):
        super().__init__()
        self.model, self.encode = model, encode

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        with onnx_exportable_attention():
            return getattr(self.model, self.encode)(frames)


class WindowHead(nn.Module):
    """The per-window half (window_head.onnx): feature windows [B, T, F] (one per stream) -> logits, by the
    method's `head`; head(encoder(frames)) == the method's forward."""

    def __init__(self, model: nn.Module, head: str):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        with onnx_exportable_attention():  # the text encoder runs here unless export baked its features
            return getattr(self.model, self.head)(*features)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s fixed position encoding, [length, dim]."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return pe


def token_projections(width: int, layers: int) -> nn.ModuleList:
    """One Linear(width, width) per visual layer, initialised as X-CLIP's message_fc (truncated normal, std 0.02;
    zero bias): the per-frame token of CLIP-guided DFER's Inter-FIT and DK-CLIP's cross-frame messages."""
    linears = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
    for linear in linears:
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
    return linears


def replace_last_token(x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """Tokens [N, L, W] with the last one replaced by `token` [N, W] (the per-layer token slot)."""
    return torch.cat([x[:, :-1], token.unsqueeze(1)], dim=1)


def per_layer_token_hooks(placeholder: torch.Tensor, layers: int, write: Callable[[int, torch.Tensor], torch.Tensor],
                          num_frames: int) -> TowerHooks:
    """Hooks that give every image one extra token after its patch tokens and let `write(layer, x)` rewrite it before
    every block (X-CLIP's message tokens, Inter-FIT's interaction tokens).

    The slot is a zero prompt appended at layer 0 and carried through all blocks (so the tower removes it at the
    end); `write` replaces its content from the sequence it is given, so the block's attention sees [frame tokens,
    new token]. The token also passes the block's MLP, per token, which leaves the frame tokens exactly as the
    papers' blocks compute them; the MLP's output for the slot is overwritten before the next block."""
    return TowerHooks(prompts=Prompts({0: placeholder}, carry=True),
                      token_hooks={i: partial(write, i) for i in range(layers)}, num_frames=num_frames)


def unit(x: torch.Tensor) -> torch.Tensor:
    """x / |x| over the last axis, computed in float32 and returned in x's dtype: in fp16 the sum of squares of a
    512-wide feature overflows once its entries pass ~11, and normalize's eps (1e-12) is 0."""
    return F.normalize(x.float(), dim=-1).to(x.dtype)


def cosine_logits(features: torch.Tensor, class_features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * cos(features, class_features): CLIP's zero-shot classifier, [B, D] x [C, D] -> [B, C]."""
    return scale * unit(features) @ unit(class_features).t()
