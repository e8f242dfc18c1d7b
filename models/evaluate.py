"""Evaluate a trained checkpoint on a test split, and aggregate folds as the papers report them.

    python -m models.evaluate CHECKPOINT --dataset dfew --fold 1 --data /data/DFEW --out results/fold1.json
    python -m models.evaluate aggregate results/fold*.json --out results/dfew.json

The first writes UAR, WAR, per-class recall and the confusion matrix to the JSON and a confusion-matrix PNG beside
it; `aggregate` averages UAR and WAR over the folds (the 5-fold means DFEW and MAFW results are quoted as).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def plot_confusion(metrics: dict, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(metrics["confusion"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)  # recall per true class
    labels = metrics["labels"]
    fig, ax = plt.subplots(figsize=(1 + 0.75 * len(labels), 0.75 * len(labels) + 1))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{share[i, j]:.2f}\n({int(matrix[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nUAR {metrics['uar']:.2%}  WAR {metrics['war']:.2%}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate(checkpoint: Path, dataset: str, fold: int | None, data: Path, frames_dir: Path | None = None,
             batch_size: int = 8, workers: int = 0, device: str = "cpu", progress: bool = False,
             scene_dir: Path | None = None) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from models.checkpoint import load_model
    from models.data import build_dataset
    from models.metrics import summarise
    from models.training.data import GreyClips
    from models.training.distributed import Dist
    from models.training.evaluation import predict

    model, meta = load_model(checkpoint)
    cfg = model.bundle_cfg
    test = build_dataset(dataset, data, "test", fold, method=meta["model"], image_size=cfg["image_size"],
                         num_frames=cfg["num_frames"], frames_dir=frames_dir,
                         scene=bool(cfg.get("needs_scene")), scene_dir=scene_dir,
                         sampling=(meta.get("training") or {}).get("recipe", {}).get("frame_sampling", "segments"),
                         **({"mean": cfg["mean"], "std": cfg["std"]} if cfg["channels"] == 3 else {}))
    if cfg["channels"] == 1:
        test = GreyClips(test, cfg)
    loader = DataLoader(test, batch_size, shuffle=False, num_workers=workers)
    with torch.no_grad():
        targets, predictions = predict(model.to(device), loader, device, Dist(), progress)
    metrics = summarise(targets, predictions, cfg["labels"])
    return metrics | {"checkpoint": str(checkpoint), "checkpoint_sha256": meta["sha256"], "model": meta["model"],
                      "factory": meta["factory"], "dataset": dataset, "fold": fold,
                      "trained_on": meta.get("training", {}).get("dataset")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a models.train checkpoint, or `aggregate`")
    parser.add_argument("results", type=Path, nargs="*", help="aggregate: the per-fold result JSON files")
    parser.add_argument("--dataset", choices=["dfew", "ferv39k", "mafw"])
    parser.add_argument("--fold", type=int)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--frames-dir", type=Path)
    parser.add_argument("--scene-dir", type=Path, help="scene frames for scene-aware models (OUS)")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (a PNG is written beside it)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = _parser()
    args = parser.parse_args(argv)
    if str(args.checkpoint) == "aggregate":
        from models.metrics import mean_over_folds

        try:
            summary = mean_over_folds([json.loads(p.read_text()) for p in args.results])
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot aggregate: {exc}", file=sys.stderr)
            return 2
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{len(summary['per_fold'])} folds: UAR {summary['uar']:.2%} (+-{summary['uar_std']:.2%}), "
              f"WAR {summary['war']:.2%} (+-{summary['war_std']:.2%})")
        return 0
    if args.dataset is None or args.data is None:
        parser.error("evaluating a checkpoint needs --dataset and --data")
    from models.checkpoint import CheckpointError
    from models.data import DatasetError

    try:
        metrics = evaluate(args.checkpoint, args.dataset, args.fold, args.data, args.frames_dir, args.batch_size,
                           args.workers, args.device, progress=not args.no_progress and sys.stderr.isatty(),
                           scene_dir=args.scene_dir)
    except (CheckpointError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    png = plot_confusion(metrics, args.out.with_suffix(".png"),
                         f"{metrics['model']} on {args.dataset}" + (f" fold {args.fold}" if args.fold else ""))
    print(f"UAR {metrics['uar']:.2%}, WAR {metrics['war']:.2%} on {metrics['samples']} clips -> {args.out}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
