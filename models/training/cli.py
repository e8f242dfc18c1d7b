"""python -m models.train: the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch

from models.clip_weights import add_activation_flags

USAGE = """Train a DFER method on DFEW, FERV39k or MAFW, on one device or many (torchrun).

    python -m models.train --model duse --backbone ViT-B-16 --dataset dfew --fold 1 --data /data/DFEW \\
        --out runs/duse-b16-dfew1 [--recipe my_recipe.json] [--epochs E] [--resume] \\
        [--clip-checkpoint PATH [--quick-gelu | --no-quick-gelu | --clip-tag TAG]]
    torchrun --nproc-per-node 4 -m models.train ...          # DDP: NCCL on GPUs, gloo on CPUs

Everything the paper fixes comes from the recipe (models/configs/train/<method>.json, or --recipe FILE in the same
schema, docs/TRAINING_RECIPES.md): frames, input size, augmentation, mixing, loss constants, label smoothing,
schedule, optimiser and learning-rate groups, validation split and checkpoint selection. The run directory gets
last.pt (every epoch, resumable), best.pt (best by the recipe's select_by), metrics.jsonl (per epoch: loss and each
loss term, every group's learning rate, validation and test metrics), TensorBoard logs (tb/) and the resolved recipe
(recipe.json). `--backbone tiny` trains a tiny config on a CPU. OpenAI's released CLIP files are recognised by
sha256 and get QuickGELU; any other CLIP file needs --quick-gelu, --no-quick-gelu or --clip-tag (exit code 2
otherwise): the activation is never guessed.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a registered method (duse, ous, clip_guided, pe_clip, "
                                                       "dk_clip, dfer_clip) or baseline")
    parser.add_argument("--recipe", type=Path, help="a recipe file (default: the method's paper recipe)")
    parser.add_argument("--backbone", help="ViT-B-32, ViT-B-16, ViT-L-14 or tiny (default: the recipe's)")
    parser.add_argument("--dataset", required=True, choices=["dfew", "ferv39k", "mafw"])
    parser.add_argument("--fold", type=int, help="1-5 for DFEW and MAFW; none for FERV39k")
    parser.add_argument("--data", required=True, type=Path, help="dataset root, in its distributed layout")
    parser.add_argument("--frames-dir", type=Path, help="face crops made by `python -m models.prepare`")
    parser.add_argument("--scene-dir", type=Path, help="scene frames (OUS) made by `python -m models.prepare` "
                                                       "(default: the dataset's, docs/DATASETS.md)")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--image-size", type=int, help="train a CLIP method at this input size instead of the "
                        "recipe's (px, a multiple of the patch size; position embeddings interpolated): a cheaper "
                        "model to run on a CPU")
    parser.add_argument("--clip-checkpoint", type=Path, help="local CLIP weights (open_clip .pt/.bin/.safetensors)")
    add_activation_flags(parser)
    parser.add_argument("--epochs", type=int, help="override the recipe's")
    parser.add_argument("--batch-size", type=int, help="total over all processes (default: the recipe's)")
    parser.add_argument("--lr", type=float, help="override the recipe's base rate")
    parser.add_argument("--accumulate", type=int, default=1, help="optimiser step every K batches")
    parser.add_argument("--eval-every", type=int, default=1, help="test-set evaluation every N epochs")
    parser.add_argument("--max-steps", type=int, help="stop each epoch after this many batches (smoke runs)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-amp", action="store_true", help="full precision even on a GPU")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.dataset in ("dfew", "mafw") and args.fold is None:
        parser.error(f"{args.dataset} has 5 folds: pass --fold 1..5")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from models.checkpoint import CheckpointError
    from models.data import DatasetError
    from models.training.loop import run

    try:
        summary = run(args)
    except (DatasetError, CheckpointError, ValueError, FileNotFoundError) as exc:  # RecipeError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0
