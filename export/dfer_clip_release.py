"""DFER-CLIP's released checkpoints (zengqunzhao/DFER-CLIP, DFEW folds 1-5, FERV39k, MAFW folds 1-5) -> the
registered `dfer_clip` model -> a standard bundle, through the same export path as a `models.train` checkpoint.

A released file is `torch.save({epoch, state_dict, best_acc, optimizer, recorder})` of a DataParallel model: keys
`module.prompt_learner.*` (ctx, token_prefix, token_suffix), `module.text_encoder.*` and `module.image_encoder.*` in
OpenAI CLIP names (open_clip's CLIP uses the same), `module.temporal_net.*`, and `module.clip_model_.*` (the whole
CLIP again, sharing those tensors); `recorder` is its training script's `__main__.RecorderMeter` holding numpy
arrays pickled under numpy 1.x. It is read with torch's weights-only unpickler and an explicit allow-list (a stub for
the recorder, numpy's array reconstruction): nothing in the file can run code, and a file carrying any other global
is refused before it is unpickled.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_weights_only, numpy_array_globals
from models.text import DFER_CLIP_RELEASE_LABELS
from service.bundle import TrainingInfo, file_sha256

log = logging.getLogger(__name__)

OFFICIAL_REPOSITORY = "https://github.com/zengqunzhao/DFER-CLIP"
LICENSE = "MIT (c) Zengqun Zhao; weights released with zengqunzhao/DFER-CLIP"
# The paper's results, UAR and WAR in percent (its comparison table, reproduced as img/performance.png in the
# repository; 5-fold means for DFEW and MAFW, the test set for FERV39k).
PAPER_RESULTS: dict[str, tuple[float, float]] = {"dfew": (59.61, 71.25), "ferv39k": (41.27, 51.65),
                                                 "mafw": (39.89, 52.55)}
TOP_LEVEL_KEYS = {"epoch", "state_dict", "best_acc", "optimizer", "recorder"}
PREFIX = "module."
RELEASED_BACKBONE = "ViT-B-32"  # every released file (main.py: clip.load("ViT-B/32")); tests substitute "tiny"


class RecorderMeter:
    """Stands in for the training script's `__main__.RecorderMeter` (loss/accuracy curves as numpy arrays): the
    unpickler may create it and fill its attributes, nothing more. Its contents are not used."""


def _allowed_globals() -> list[tuple[object, str]]:
    return [(RecorderMeter, "__main__.RecorderMeter"), *numpy_array_globals()]


def load_release(path: str | Path) -> dict:
    """The checkpoint dict, unpickled safely; refuses a file that carries anything but tensors, containers, the
    recorder and numpy arrays, naming what it carried."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (download one of DFER-CLIP's released .pth files from "
                              f"{OFFICIAL_REPOSITORY})")
    payload = load_weights_only(path, _allowed_globals())
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a DFER-CLIP checkpoint: expected a dict with keys "
                              f"{sorted(TOP_LEVEL_KEYS)}, got {type(payload).__name__}"
                              + (f" with keys {sorted(payload)}" if isinstance(payload, dict) else ""))
    return payload


# ---- released names -> dfer_clip's names -----------------------------------------------------------------------

# our TemporalBlock's parts -> the released Transformer layer's (Residual(PreNorm(Attention)), Residual(PreNorm(FF)))
_TEMPORAL_PARTS = {
    "attn_norm.": "0.fn.norm.",
    "qkv.": "0.fn.fn.to_qkv.",
    "proj.": "0.fn.fn.to_out.0.",
    "mlp_norm.": "1.fn.norm.",
    "mlp.0.": "1.fn.fn.net.0.",
    "mlp.2.": "1.fn.fn.net.3.",
}
_TEXT_ENCODER = ("transformer", "positional_embedding", "ln_final", "text_projection")


def released_name(ours: str) -> str:
    """The released key (without `module.`) that holds our tensor `ours`."""
    if ours == "class_context":
        return "prompt_learner.ctx"
    if ours.startswith("backbone.clip.visual."):
        return "image_encoder." + ours.removeprefix("backbone.clip.visual.")
    if ours.startswith("backbone.clip."):
        rest = ours.removeprefix("backbone.clip.")
        # token_embedding and logit_scale are only in the duplicate CLIP (the prompt learner embeds the words once)
        return ("text_encoder." if rest.split(".")[0] in _TEXT_ENCODER else "clip_model_.") + rest
    if ours.startswith("temporal_net.blocks."):
        layer, part = ours.removeprefix("temporal_net.blocks.").split(".", 1)
        for mine, theirs in _TEMPORAL_PARTS.items():
            if part.startswith(mine):
                return f"temporal_net.temporal_transformer.layers.{layer}.{theirs}{part.removeprefix(mine)}"
    if ours.startswith("temporal_net."):
        return ours  # cls_token, pos_embedding
    raise KeyError(f"no released name for {ours}")


def expected_layout(model) -> dict[str, tuple[int, ...]]:
    """Every key of a released state dict (without `module.`) for this model, with its shape."""
    layout = {released_name(name): tuple(t.shape) for name, t in model.state_dict().items()}
    layout |= {"clip_model_." + name: tuple(t.shape) for name, t in model.backbone.clip.state_dict().items()}
    classes, context, width = model.class_context.shape
    layout["prompt_learner.token_prefix"] = (classes, 1, width)  # SOT's embedding, per class
    layout["prompt_learner.token_suffix"] = (classes, model.backbone.context_length - 1 - context, width)
    return layout


def _listing(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def check_layout(state: dict, layout: dict[str, tuple[int, ...]], path: Path) -> None:
    missing, unexpected = layout.keys() - state.keys(), state.keys() - layout.keys()
    if missing or unexpected:
        raise CheckpointError(f"{path} does not have DFER-CLIP's released layout: "
                              + "; ".join(part for part in (missing and f"missing {_listing(missing)}",
                                                            unexpected and f"unexpected {_listing(unexpected)}")
                                          if part))
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: {_listing(not_tensors)} are not tensors")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {shape})" for k, shape in layout.items()
             if tuple(state[k].shape) != shape]
    if wrong:
        raise CheckpointError(f"{path} has tensors of the wrong shape: {_listing(wrong, 4)}")


def check_prompts(model, state: dict, path: Path, dataset: str) -> None:
    """The release stores its prompts' fixed word embeddings (SOT before the context; descriptor, EOT and padding
    after it): they must be the embeddings of our descriptor prompts, or the baked text features would differ."""
    context = model.class_context.shape[1]
    with torch.no_grad():
        words = model.backbone.embed_text(model.class_tokens)
    diffs = {"token_prefix": (words[:, :1] - state["prompt_learner.token_prefix"]).abs().max(),
             "token_suffix": (words[:, 1 + context:] - state["prompt_learner.token_suffix"]).abs().max()}
    bad = {k: float(v) for k, v in diffs.items() if not v <= 1e-5}
    if bad:
        raise CheckpointError(f"{path}: the prompts' word embeddings ({', '.join(bad)}) are not those of DFER-CLIP's "
                              f"class descriptors for {dataset} in the released class order (max difference "
                              f"{max(bad.values()):.3g}); was it trained with another --text-type, or on another "
                              "dataset?")


def check_duplicates(state: dict, layout_names: dict[str, str], path: Path) -> None:
    """`clip_model_.*` shares its tensors with the encoders in the released model: a file where they differ has been
    edited, and which copy the model used would be a guess."""
    for ours, released in layout_names.items():
        twin = "clip_model_." + ours.removeprefix("backbone.clip.")
        if released != twin and twin in state and not torch.equal(state[released], state[twin]):
            raise CheckpointError(f"{path}: {released} and its duplicate {twin} differ")


def fold_from_name(path: Path) -> int | None:
    """DFEW and MAFW checkpoints are per fold; the training script names them ...-set<N>-model_best.pth."""
    match = re.search(r"(?:set|fold)[ _-]?([1-5])(?!\d)", path.name, re.IGNORECASE)
    return int(match.group(1)) if match else None


def convert_release(path: str | Path, dataset: str, backbone: str | None = None):
    """(dfer_clip model in eval mode holding the released weights, its provenance). `backbone`: the architecture
    the file must have (default RELEASED_BACKBONE; tests use "tiny" files in the same layout)."""
    from models.backbone import weights_loaded_next
    from models.registry import create_model

    path = Path(path)
    dataset = dataset.lower()
    if dataset not in DFER_CLIP_RELEASE_LABELS:
        raise ValueError(f"unknown dataset {dataset!r}; DFER-CLIP released checkpoints for "
                         f"{', '.join(DFER_CLIP_RELEASE_LABELS)}")
    payload = load_release(path)
    state = payload["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: state_dict is a {type(state).__name__}, not a dict of tensors")
    if state and all(k.startswith(PREFIX) for k in state):  # saved from torch.nn.DataParallel
        state = {k.removeprefix(PREFIX): v for k, v in state.items()}
    with weights_loaded_next():  # every tensor comes from the file (checked below)
        model = create_model("dfer_clip", backbone=backbone or RELEASED_BACKBONE, dataset=dataset,
                             labels=DFER_CLIP_RELEASE_LABELS[dataset])
    layout = expected_layout(model)
    check_layout(state, layout, path)
    names = {ours: released_name(ours) for ours in model.state_dict()}
    check_duplicates(state, names, path)
    model.load_state_dict({ours: state[released] for ours, released in names.items()}, strict=True)
    check_prompts(model, state, path, dataset)
    sha256 = file_sha256(path)
    uar, war = PAPER_RESULTS[dataset]
    best = payload.get("best_acc")
    best = float(best) if isinstance(best, (torch.Tensor, int, float)) else None
    fold = fold_from_name(path)
    averaged = "5-fold mean" if dataset in ("dfew", "mafw") else "test set"
    source = (f"DFER-CLIP released checkpoint {path.name} (sha256 {sha256}, epoch {payload.get('epoch')}"
              + (f", best test accuracy {best:.2f} %" if best is not None else "")
              + f") from {OFFICIAL_REPOSITORY}; uar/war: the paper's {averaged} for {dataset}")
    info = TrainingInfo(dataset=dataset, fold=fold, uar=round(uar / 100, 4), war=round(war / 100, 4), source=source,
                        license=LICENSE)
    log.info("converted %s: %s, %d classes, fold %s", path.name, dataset, len(model.labels), fold)
    return model.eval(), info
