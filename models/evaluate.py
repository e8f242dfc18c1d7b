"""Evaluate a trained checkpoint on a test split, bundles on labelled face photographs, and aggregate folds as the
papers report them.

    python -m models.evaluate CHECKPOINT --dataset dfew --fold 1 --data /data/DFEW --out results/fold1.json
    python -m models.evaluate faces BUNDLE [BUNDLE ...] --folder PHOTOS --out results/photos.json [--whole-image]
    python -m models.evaluate aggregate results/fold*.json --out results/dfew.json

The first two write UAR, WAR, per-class recall, the confusion matrix and the expected calibration error before
(T=1) and after the model's temperature (fitted at the end of training, or on a folder for a converted bundle) to
the JSON, and beside it a confusion matrix (.png) and a reliability diagram (.reliability.png). `faces` reads
PHOTOS/<label>/<image> (models/data/labelled_faces.py) and, given several bundles, also their average.
`aggregate` averages UAR and WAR over the folds (the 5-fold means DFEW and MAFW results are quoted as).
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


def plot_reliability(before, after, path: Path, title: str, temperature: float) -> Path:
    """Reliability diagram: accuracy against confidence per bin (models.calibration.Reliability), at T=1 and at the
    model's temperature, with each one's expected calibration error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    width = 1.0 / len(before.edges)
    for rel, name, colour, shift in ((before, "T = 1", "tab:red", 0.0), (after, f"T = {temperature:.3g}",
                                                                         "tab:blue", 0.5)):
        filled = rel.counts > 0
        ax.bar(rel.edges[filled] + width * shift / 2 + width / 4, rel.accuracy[filled], width=width / 2,
               color=colour, alpha=0.7, label=f"{name}: ECE {rel.ece:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def calibration_report(logits: np.ndarray, targets: np.ndarray, temperature: float) -> dict:
    from models.calibration import expected_calibration_error, softmax

    return {"temperature": temperature, "ece_before": expected_calibration_error(softmax(logits), targets),
            "ece_after": expected_calibration_error(softmax(logits, temperature), targets)}


def write_figures(metrics: dict, probs_t1: np.ndarray, probs: np.ndarray, targets: np.ndarray, out: Path,
                  title: str, temperature: float) -> tuple[Path, Path]:
    """The confusion matrix (.png) and the reliability diagram (.reliability.png) beside the results JSON."""
    from models.calibration import reliability

    confusion = plot_confusion(metrics, out.with_suffix(".png"), title)
    diagram = plot_reliability(reliability(probs_t1, targets), reliability(probs, targets),
                               out.with_suffix(".reliability.png"), title, temperature)
    return confusion, diagram


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
    from models.training.evaluation import predict_logits

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
        targets, logits = predict_logits(model.to(device), loader, device, Dist(), progress)
    metrics = summarise(targets, logits.argmax(1), cfg["labels"])
    calibration = (meta.get("training") or {}).get("calibration") or {}
    metrics |= calibration_report(logits, targets, calibration.get("temperature", 1.0))
    metrics["temperature_fitted_on"] = calibration.get("fitted_on")
    return metrics | {"checkpoint": str(checkpoint), "checkpoint_sha256": meta["sha256"], "model": meta["model"],
                      "factory": meta["factory"], "dataset": dataset, "fold": fold,
                      "trained_on": meta.get("training", {}).get("dataset"), "_logits": logits, "_targets": targets}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a models.train checkpoint, or `faces`, or `aggregate`")
    parser.add_argument("results", type=Path, nargs="*", help="faces: bundle directories; aggregate: the per-fold "
                        "result JSON files")
    parser.add_argument("--folder", type=Path, help="faces: labelled photographs FOLDER/<label>/<image>")
    parser.add_argument("--whole-image", action="store_true", help="faces: the photographs are face crops already")
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
    if str(args.checkpoint) == "faces":
        return _faces(args, parser)
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
    from models.calibration import softmax

    logits, targets = metrics.pop("_logits"), metrics.pop("_targets")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{metrics['model']} on {args.dataset}" + (f" fold {args.fold}" if args.fold else "")
    t = metrics["temperature"]
    pngs = write_figures(metrics, softmax(logits), softmax(logits, t), targets, args.out, title, t)
    print(f"UAR {metrics['uar']:.2%}, WAR {metrics['war']:.2%} on {metrics['samples']} clips; ECE "
          f"{metrics['ece_before']:.4f} at T=1, {metrics['ece_after']:.4f} at T={t:.3g}"
          + ("" if metrics["temperature_fitted_on"] else " (the checkpoint has no temperature)")
          + f" -> {args.out}, {pngs[0]}, {pngs[1]}")
    return 0


def _faces(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from models.calibration import softmax
    from models.data.labelled_faces import LabelledFolderError
    from models.faces_eval import evaluate_on_faces
    from service.errors import ServiceError

    if not args.results or args.folder is None:
        parser.error("faces needs one or more bundle directories and --folder")
    try:
        summary = evaluate_on_faces(args.results, args.folder, whole_image=args.whole_image, keep_probs=True)
    except (LabelledFolderError, ServiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    entries = list(summary["models"].items()) + ([("average", summary["average"])] if summary["average"] else [])
    for name, m in entries:
        probs_t1, probs, targets = m.pop("_probs_t1"), m.pop("_probs"), m.pop("_targets")
        out = args.out.with_name(f"{args.out.stem}.{name}.json")
        pngs = write_figures(m, probs_t1, probs, targets, out, f"{name} on {args.folder.name}",
                             m.get("temperature", 1.0))
        print(f"{name}: WAR {m['war']:.2%}, UAR {m['uar']:.2%} on {m['samples']} faces; ECE {m['ece_t1']:.4f} at "
              f"T=1, {m['ece']:.4f} at its temperature" + (" (fitted on this folder: not a fair figure)"
                                                            if m.get("temperature_fitted_here") else "")
              + f" -> {pngs[0]}, {pngs[1]}")
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
