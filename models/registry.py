"""What models exist and what each promises: a decorator registry (timm's `register_model`), the factory
(`create_model`), per-method hyper-parameters as data (models/configs/<name>.json), and the contract every model
keeps: `forward(faces[B,T,3,H,W], scene=None) -> logits[B,C]`, `bundle_cfg` for the model bundle (DESIGN.md
Contract 1), and, where the method has its own objective, `loss(faces, labels, scene=None) -> LossOutput`.

Nothing here imports torch, so listing models stays cheap; the model modules are imported on first use.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

CONFIG_DIR = Path(__file__).parent / "configs"
# Modules whose import registers models; a new method (or the baseline) adds its module here.
BUILTIN_MODULES = ("models.duse", "models.ous", "models.clip_guided", "models.pe_clip", "models.dk_clip",
                   "models.dfer_clip", "models.mini_xception")
NUM_FRAMES = 16

_entrypoints: dict[str, Callable[..., Any]] = {}
_builtins_loaded = False


def register_model(fn: Callable[..., Any] | None = None, *, name: str | None = None):
    """Register a model entrypoint under its function name (or `name`). The entrypoint takes keyword arguments;
    `backbone`, `num_classes` and `checkpoint` are passed only when the caller gave them, so a model without a
    CLIP backbone registers the same way."""

    def add(entry: Callable[..., Any]) -> Callable[..., Any]:
        key = name or entry.__name__
        if key in _entrypoints and _entrypoints[key] is not entry:
            warnings.warn(f"model {key!r} registered twice; the later entrypoint {entry.__module__} wins",
                          stacklevel=2)
        _entrypoints[key] = entry
        return entry

    return add(fn) if fn is not None else add


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def list_models(pattern: str = "*") -> list[str]:
    _load_builtins()
    return sorted(n for n in _entrypoints if fnmatch.fnmatch(n, pattern))


def create_model(name: str, backbone: str | None = None, num_classes: int | None = None,
                 checkpoint: str | Path | None = None, **kwargs: Any):
    """Build model `name`. `backbone`: ViT-B-32, ViT-B-16, ViT-L-14 or tiny (default: the paper's, from the
    model's config); `checkpoint`: local CLIP weights file (None: random weights); `num_classes` or
    `dataset=` / `labels=` fix the label set (default DFEW). Other keyword arguments override the config's
    hyper-parameters and take precedence over everything else."""
    _load_builtins()
    if name not in _entrypoints:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    given = {"backbone": backbone, "num_classes": num_classes, "checkpoint": checkpoint}
    return _entrypoints[name](**{k: v for k, v in given.items() if v is not None}, **kwargs)


def load_config(name: str, backbone: str | None = None) -> dict[str, Any]:
    """models/configs/<name>.json: `defaults` (the paper's values), then `backbones[backbone]` on top."""
    path = CONFIG_DIR / f"{name}.json"
    config = json.loads(path.read_text())
    merged = dict(config["defaults"])
    backbone = backbone or merged["backbone"]
    merged.update(config.get("backbones", {}).get(backbone, {}))
    merged["backbone"] = backbone
    return merged


def build_clip_method(model_cls, name: str, backbone: str | None, num_classes: int | None,
                      checkpoint: str | Path | None, dataset: str | None, labels, overrides: dict[str, Any]):
    """The factory body every CLIP method shares: its paper config, the label set, the backbone, then the model
    (keyword overrides win over the config)."""
    from models.backbone import create_backbone
    from models.text import resolve_labels

    cfg = load_config(name, backbone)
    dataset, labels = resolve_labels(dataset, num_classes, labels)
    quick_gelu = overrides.pop("quick_gelu", cfg.pop("quick_gelu", None))  # a config may fix it (DFER-CLIP)
    clip = create_backbone(cfg.pop("backbone"), checkpoint, quick_gelu=quick_gelu,
                           clip_tag=overrides.pop("clip_tag", None))
    if (image_size := overrides.pop("image_size", None)) is not None:  # train (or run) at another input size
        clip.set_image_size(image_size)
    return model_cls(clip, labels, dataset=dataset, **(cfg | overrides))


def set_image_size(model, size: int) -> None:
    """Run a built (or trained) CLIP method on size x size inputs; bundle_cfg follows, so its export and the
    service use that size. See CLIPBackbone.set_image_size."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "set_image_size"):
        raise ValueError(f"{model.bundle_cfg['method']} has a fixed input size ({model.bundle_cfg['image_size']} px)")
    backbone.set_image_size(size)
    model.bundle_cfg["image_size"] = size


# ---- the contract -------------------------------------------------------------------------------------------------

@dataclass
class LossOutput:
    total: "torch.Tensor"  # what to backpropagate
    terms: dict[str, "torch.Tensor"]  # each named term of the objective (the trainer logs them detached)
    logits: "torch.Tensor"


def backbone_slug(backbone: str) -> str:
    return backbone.replace("-", "").lower()  # ViT-B-16 -> vitb16


def make_bundle_cfg(method: str, backbone, labels: tuple[str, ...], *, dataset: str | None, name: str | None,
                    num_frames: int = NUM_FRAMES, needs_scene: bool = False) -> dict[str, Any]:
    """The model's half of bundle.json: what export/ writes and what the service needs to feed the model."""
    from models.backbone import CLIP_MEAN, CLIP_STD

    return {
        "name": name or f"{method}-{backbone_slug(backbone.name)}-{dataset or 'custom'}",
        "method": method,
        "backbone": backbone.name,
        "dataset": dataset,
        "labels": list(labels),
        "num_frames": num_frames,
        "image_size": backbone.image_size,
        "channels": 3,
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "needs_scene": needs_scene,
        "inputs": ["faces", "scene"] if needs_scene else ["faces"],
    }
