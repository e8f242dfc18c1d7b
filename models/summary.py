"""Size and cost of a registered model: `python -m models.summary NAME --backbone B [--json]`.

Parameters are counted on the model as built (random weights unless --checkpoint); GFLOPs are measured with
torch.utils.flop_counter over one forward of a single window (batch 1, --frames frames, and the scene window for
models that take one). The counter counts matrix multiplies, convolutions and attention, 2 FLOPs per
multiply-accumulate; elementwise ops are left out. Attention runs unfused while counting, since
nn.MultiheadAttention's fused inference op has no FLOP formula and would be skipped.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.backbone import unfused_attention
from models.clip_weights import ActivationUnknownError, add_activation_flags
from models.registry import create_model


def window_gflops(model: torch.nn.Module, window: torch.Tensor, scene: torch.Tensor | None = None) -> float:
    """GFLOPs of one forward. Inference cost: no parameter needs a gradient afterwards (the counter's module tracker
    trips over views of trainable leaves made under no_grad), and attention unfused, since the fused op has no FLOP
    formula."""
    model.requires_grad_(False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), unfused_attention(), counter:
        model(window, scene)
    return counter.get_total_flops() / 1e9


def summarize(name: str, backbone: str | None = None, num_frames: int = 16, checkpoint: str | None = None,
              **kwargs) -> dict:
    model = create_model(name, backbone=backbone, checkpoint=checkpoint, **kwargs).eval()
    cfg = model.bundle_cfg
    size = cfg["image_size"]
    window = torch.randn(1, num_frames, 3, size, size)
    scene = torch.randn_like(window) if cfg["needs_scene"] else None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    gflops = window_gflops(model, window, scene)
    return {
        "name": name,
        "backbone": cfg["backbone"],
        "num_classes": len(cfg["labels"]),
        "num_frames": num_frames,
        "image_size": size,
        "inputs": cfg["inputs"],
        "trainable_params": trainable,
        "total_params": total,
        "gflops_per_window": round(gflops, 2),
        "weights": "checkpoint" if checkpoint else "random",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.summary", description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--backbone", default=None, help="ViT-B-32, ViT-B-16, ViT-L-14 or tiny")
    parser.add_argument("--checkpoint", default=None, help="local CLIP weights (default: random weights)")
    add_activation_flags(parser)
    parser.add_argument("--dataset", default=None, help="dfew, ferv39k or mafw (default dfew)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    activation = {k: v for k, v in (("quick_gelu", args.quick_gelu), ("clip_tag", args.clip_tag)) if v is not None}
    try:
        result = summarize(args.name, args.backbone, args.frames, args.checkpoint,
                           **({"dataset": args.dataset} if args.dataset else {}), **activation)
    except ActivationUnknownError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value:,}" if isinstance(value, int) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
