"""Train a DFER method on DFEW, FERV39k or MAFW, on one device or many (torchrun).

    python -m models.train --model duse --backbone ViT-B-16 --dataset dfew --fold 1 --data /data/DFEW \
        --out runs/duse-b16-dfew1 [--epochs E] [--clip-checkpoint PATH] [--batch-size N] [--accumulate K] [--resume]
    torchrun --nproc-per-node 4 -m models.train ...          # DDP: NCCL on GPUs, gloo on CPUs

Defaults come from the method's recipe (models/configs/train/<method>.json, each paper's values). The run
directory gets last.pt (every epoch, resumable), best.pt (best test UAR so far, as the papers select), metrics.jsonl,
TensorBoard logs (tb/) and the resolved recipe (recipe.json). `--backbone tiny` trains a tiny config on a CPU.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from models.checkpoint import read_checkpoint, save_checkpoint
from models.metrics import summarise
from models.recipes import load_recipe, lr_factor

log = logging.getLogger("models.train")


# ---- distributed set-up ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


# ---- optimisation -----------------------------------------------------------------------------------------------

def build_optimizer(model: torch.nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """Only trainable parameters; `lr_groups` (name pattern -> lr) give parts their own learning rate, as some
    papers do; no weight decay on biases and norms."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = next((v for pattern, v in recipe.get("lr_groups", {}).items() if fnmatch.fnmatch(name, pattern)),
                  recipe["lr"])
        decay = 0.0 if param.ndim <= 1 else recipe.get("weight_decay", 0.0)
        groups.setdefault((lr, decay), []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    params = [{"params": p, "lr": lr, "weight_decay": wd, "initial_lr": lr} for (lr, wd), p in groups.items()]
    kind = recipe.get("optimizer", "adamw")
    if kind == "sgd":
        return torch.optim.SGD(params, lr=recipe["lr"], momentum=recipe.get("momentum", 0.9))
    betas = tuple(recipe.get("betas", (0.9, 0.999)))
    if kind == "adam":
        return torch.optim.Adam(params, lr=recipe["lr"], betas=betas)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=recipe["lr"], betas=betas)
    raise ValueError(f"unknown optimizer {kind!r}")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


class TrainingObjective(torch.nn.Module):
    """What DDP wraps: the training loss as the module's forward, so DDP sees every step (its gradient hooks and
    unused-parameter tracking need the forward to go through it). The method's own `loss` on plain batches;
    cross-entropy against the mixed targets on a batch mixed by mixup/FMix (a method's auxiliary terms need hard
    labels, so they sit out mixed batches)."""

    def __init__(self, model: torch.nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.model, self.label_smoothing = model, label_smoothing

    def forward(self, faces, labels, soft_targets=None, scene=None):
        if soft_targets is not None:
            loss = torch.nn.functional.cross_entropy(self.model(faces, scene), soft_targets)
            return loss, {"ce_mixed": loss.detach()}
        if hasattr(self.model, "loss"):
            out = self.model.loss(faces, labels, scene)
            return out.total, out.terms
        loss = torch.nn.functional.cross_entropy(self.model(faces, scene), labels,
                                                 label_smoothing=self.label_smoothing)
        return loss, {"ce": loss.detach()}


def recipe_mixing(recipe: dict[str, Any]):
    """The recipe's mixup/FMix as batch mixing (per-batch probabilities and alphas), or None."""
    from models.data.mixing import BatchMixing

    if not (recipe.get("mixup") or recipe.get("fmix")):
        return None
    defaults = BatchMixing()
    return BatchMixing(mixup_p=recipe.get("mixup", 0.0), fmix_p=recipe.get("fmix", 0.0),
                       mixup_alpha=recipe.get("mixup_alpha", defaults.mixup_alpha),
                       fmix_alpha=recipe.get("fmix_alpha", defaults.fmix_alpha),
                       fmix_decay_power=recipe.get("fmix_decay_power", defaults.fmix_decay_power))


class Plateau:
    """The `plateau` schedule (OUS): multiply the learning rate by `factor` after `patience` epochs without a
    lower loss; `stop_below` ends training once the rate falls under it."""

    def __init__(self, recipe: dict[str, Any]):
        options = recipe.get("plateau", {})
        self.factor, self.patience = options.get("factor", 1 / 3), options.get("patience", 5)
        self.stop_below = options.get("stop_below", recipe.get("min_lr"))
        self.scale, self.best, self.waited = 1.0, float("inf"), 0

    def step(self, loss: float) -> None:
        if loss < self.best:
            self.best, self.waited = loss, 0
            return
        self.waited += 1
        if self.waited > self.patience:
            self.scale *= self.factor
            self.waited = 0

    def exhausted(self, base_lr: float) -> bool:
        return self.stop_below is not None and base_lr * self.scale < self.stop_below


# ---- data -----------------------------------------------------------------------------------------------------

def build_loaders(args, recipe: dict[str, Any], model_cfg: dict[str, Any], ddp: Dist):
    from models.data import build_dataset

    common = {"method": args.model, "image_size": model_cfg["image_size"], "num_frames": recipe["num_frames"],
              "frames_dir": args.frames_dir, "scene": bool(model_cfg.get("needs_scene")), "scene_dir": args.scene_dir}
    train = build_dataset(args.dataset, args.data, "train", args.fold, **common)
    test = build_dataset(args.dataset, args.data, "test", args.fold, **common)
    if model_cfg["channels"] == 1:  # the baseline reads grey 64x64
        train, test = GreyClips(train, model_cfg), GreyClips(test, model_cfg)
    train_sampler = DistributedSampler(train, ddp.world, ddp.rank, shuffle=True, seed=args.seed) if ddp.world > 1 else None
    test_sampler = DistributedSampler(test, ddp.world, ddp.rank, shuffle=False) if ddp.world > 1 else None
    per_device = max(1, args.batch_size // ddp.world)
    loader = dict(num_workers=args.workers, pin_memory=args.device.startswith("cuda"),
                  persistent_workers=args.workers > 0)
    return (DataLoader(train, per_device, shuffle=train_sampler is None, sampler=train_sampler, drop_last=True,
                       **loader),
            DataLoader(test, per_device, shuffle=False, sampler=test_sampler, **loader), train_sampler)


class GreyClips(torch.utils.data.Dataset):
    """Adapts CLIP-normalised RGB clips to a grey model's own normalisation (the baseline's 64x64 grey input)."""

    def __init__(self, clips, cfg: dict[str, Any]):
        from models.backbone import CLIP_MEAN, CLIP_STD

        self.clips, self.cfg = clips, cfg
        self.rgb_mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self.rgb_std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index):
        faces, label = self.clips[index]
        rgb = faces * self.rgb_std + self.rgb_mean  # back to [0, 1]
        grey = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
        return (grey - self.cfg["mean"][0]) / self.cfg["std"][0], label


def unpack(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(faces, labels, scene): a scene-aware model's batches are (faces, scene, labels), the others' (faces, labels)."""
    if len(batch) == 3:
        faces, scene, labels = batch
        return faces, labels, scene
    faces, labels = batch
    return faces, labels, None


# ---- evaluation -----------------------------------------------------------------------------------------------

@torch.no_grad()
def predict(model, loader, device: str, ddp: Dist, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    targets, predictions = [], []
    for batch in tqdm(loader, desc="test", leave=False, disable=not progress):
        faces, labels, scene = unpack(batch)
        faces = faces.to(device, non_blocking=True)
        logits = model(faces) if scene is None else model(faces, scene.to(device, non_blocking=True))
        predictions.append(logits.argmax(1).cpu().numpy())
        targets.append(np.asarray(labels))
    local = (np.concatenate(targets) if targets else np.zeros(0, int),
             np.concatenate(predictions) if predictions else np.zeros(0, int))
    if ddp.world == 1:
        return local
    gathered: list = [None] * ddp.world
    dist.all_gather_object(gathered, local)
    return np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])


# ---- the run --------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="duse, ous, clip_guided, pe_clip, dk_clip or baseline")
    parser.add_argument("--backbone", help="ViT-B-32, ViT-B-16, ViT-L-14 or tiny (default: the paper's)")
    parser.add_argument("--dataset", required=True, choices=["dfew", "ferv39k", "mafw"])
    parser.add_argument("--fold", type=int, help="1-5 for DFEW and MAFW; none for FERV39k")
    parser.add_argument("--data", required=True, type=Path, help="dataset root, in its distributed layout")
    parser.add_argument("--frames-dir", type=Path, help="face crops made by `python -m models.prepare`")
    parser.add_argument("--scene-dir", type=Path, help="scene frames (OUS) made by `python -m models.prepare` "
                                                       "(default: the dataset's, docs/DATASETS.md)")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--image-size", type=int, help="train a CLIP method at this input size (px, a multiple of "
                        "the patch size; position embeddings interpolated): a cheaper model to run on a CPU")
    parser.add_argument("--clip-checkpoint", type=Path, help="local CLIP weights (open_clip .pt/.bin/.safetensors)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="total over all processes")
    parser.add_argument("--lr", type=float)
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from models.data.mixing import mix_batch
    from models.registry import create_model

    ddp = init_distributed(args.device)
    device = f"cuda:{ddp.local_rank}" if args.device.startswith("cuda") and ddp.world > 1 else args.device
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    seed_everything(args.seed + ddp.rank)
    recipe = load_recipe(args.model, args.dataset, {"epochs": args.epochs, "batch_size": args.batch_size,
                                                    "lr": args.lr, "backbone": args.backbone})
    args.batch_size = recipe["batch_size"]
    factory = {"dataset": args.dataset}
    if recipe["backbone"] != "mini-xception":
        factory["backbone"] = recipe["backbone"]
    if args.image_size:
        factory["image_size"] = args.image_size
    if args.clip_checkpoint:
        factory["checkpoint"] = str(args.clip_checkpoint)
    model = create_model(args.model, **factory).to(device)
    factory.pop("checkpoint", None)  # the saved state dict replaces the CLIP file when the checkpoint is loaded
    cfg = model.bundle_cfg
    train_loader, test_loader, train_sampler = build_loaders(args, recipe, cfg, ddp)
    optimizer = build_optimizer(model, recipe)
    use_amp = device.startswith("cuda") and recipe.get("amp", True) and not args.no_amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, best_uar, step = 0, -1.0, 0
    last = args.out / "last.pt"
    if args.resume:
        payload = read_checkpoint(last)
        model.load_state_dict(payload["state_dict"])
        state = payload["resume"]
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_uar, step = state["epoch"] + 1, state["best_uar"], state["step"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if ddp.main:
            log.info("resumed from %s at epoch %d", last, start_epoch + 1)
    objective = TrainingObjective(model, recipe.get("label_smoothing", 0.0))
    wrapped = objective
    if ddp.world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[ddp.local_rank] if device.startswith("cuda") else None,
            find_unused_parameters=True)  # auxiliary heads may sit out some batches (mixed batches)
    # A scene-aware model is never mixed: mixup/FMix of the faces alone would pair a blended face with one clip's
    # scene, and OUS's paper mixes nothing (its recipe has mixup 0, FMix 0).
    mixing = recipe_mixing(recipe) if not cfg.get("needs_scene") else None
    plateau = Plateau(recipe) if recipe.get("schedule") == "plateau" else None
    rng = np.random.default_rng(args.seed + ddp.rank)
    writer = None
    if ddp.main:
        from torch.utils.tensorboard import SummaryWriter

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "recipe.json").write_text(json.dumps(recipe | {"factory": factory, "world": ddp.world}, indent=2))
        writer = SummaryWriter(str(args.out / "tb"))
    steps_per_epoch = max(1, min(len(train_loader), args.max_steps or len(train_loader)) // args.accumulate)
    progress = ddp.main and not args.no_progress
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if use_amp else nullcontext
    summary: dict[str, Any] = {}
    for epoch in range(start_epoch, recipe["epochs"]):
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        wrapped.train()
        started, losses = time.perf_counter(), []
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{recipe['epochs']}", disable=not progress, leave=False)
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            if args.max_steps and i >= args.max_steps:
                break
            faces, labels, scene = unpack(batch)
            faces, labels = faces.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if scene is not None:
                scene = scene.to(device, non_blocking=True)
            sync = (i + 1) % args.accumulate == 0
            context = wrapped.no_sync() if ddp.world > 1 and not sync else nullcontext()
            mixed, targets, kind = mix_batch(faces, labels, len(cfg["labels"]), mixing, rng)
            with context, autocast():
                loss, terms = wrapped(mixed, labels, targets if kind != "none" else None, scene)
            with context:
                scaler.scale(loss / args.accumulate).backward()
            if sync:
                set_lr(optimizer, plateau.scale if plateau else lr_factor(step, steps_per_epoch, recipe))
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if writer and sync:
                writer.add_scalar("train/loss", losses[-1], step)
                writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                for name, value in terms.items():
                    writer.add_scalar(f"train/{name}", float(value), step)
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None,
                  "seconds": round(time.perf_counter() - started, 2)}
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == recipe["epochs"]:
            targets, predictions = predict(model, test_loader, device, ddp, progress)
            metrics = summarise(targets, predictions, cfg["labels"])
            record |= {"uar": metrics["uar"], "war": metrics["war"]}
            if writer:
                writer.add_scalar("test/uar", metrics["uar"], epoch + 1)
                writer.add_scalar("test/war", metrics["war"], epoch + 1)
        if ddp.main:
            training = {"dataset": args.dataset, "fold": args.fold, "epoch": epoch + 1, "recipe": recipe,
                        "metrics": {k: record[k] for k in ("uar", "war") if k in record}}
            resume = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                      "step": step, "best_uar": max(best_uar, record.get("uar", -1.0)),
                      "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()}}
            save_checkpoint(last, model, name=args.model, factory=factory, training=training, resume=resume)
            if record.get("uar", -1.0) > best_uar:
                best_uar = record["uar"]
                save_checkpoint(args.out / "best.pt", model, name=args.model, factory=factory, training=training)
            with open(args.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in record.items() if k != "epoch"))
        summary = record
        if plateau is not None and record["loss"] is not None:
            plateau.step(record["loss"])
            if plateau.exhausted(recipe["lr"]):
                log.info("learning rate fell below %g: stopping (plateau schedule)", plateau.stop_below)
                break
    if writer:
        writer.close()
    if ddp.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary | {"best_uar": best_uar, "out": str(args.out)}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from models.checkpoint import CheckpointError
    from models.data import DatasetError

    try:
        summary = run(args)
    except (DatasetError, CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
