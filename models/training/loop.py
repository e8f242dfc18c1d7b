"""The run: set-up, optional resume, then per epoch: train, validate (where the recipe holds out a split), test
(every --eval-every epochs), step the plateau schedule, save last.pt/best.pt, write metrics.jsonl and TensorBoard."""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.metrics import summarise
from models.recipes import load_recipe
from models.training.best_and_last import Selection, activation_of, calibrate_best, resume, save_epoch
from models.training.data import build_loaders, unpack
from models.training.distributed import finish, init_distributed, process_device, seed_everything
from models.training.evaluation import predict, validate
from models.training.setup import Training, build_training

log = logging.getLogger("models.train")


@dataclass
class EpochStats:
    losses: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    correct: int = 0  # top-1 hits on the training batches (against the clips' own labels)
    seen: int = 0

    def add(self, loss: float, terms: dict[str, torch.Tensor], logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.losses.append(loss)
        for name, value in terms.items():
            self.terms.setdefault(name, []).append(float(value))
        self.correct += int((logits.detach().argmax(1) == labels).sum())
        self.seen += len(labels)

    def means(self, ddp) -> dict[str, Any]:
        correct, seen = (sum(n) for n in zip(*ddp.gather((self.correct, self.seen))))
        return {"loss": float(np.mean(self.losses)) if self.losses else None,
                "loss_terms": {name: float(np.mean(values)) for name, values in self.terms.items()},
                "train_acc": correct / seen if seen else None}


@dataclass
class Run:
    """What the epochs share: the training, where it runs, and the optimiser-step counter."""
    args: Any
    training: Training
    wrapped: torch.nn.Module  # the objective, under DDP when several processes train
    device: str
    ddp: Any
    scaler: torch.amp.GradScaler
    autocast: Any
    steps_per_epoch: int
    step: int = 0
    writer: Any = None

    @property
    def progress(self) -> bool:
        return self.ddp.main and not self.args.no_progress


def train_one_epoch(run: Run, loader, epoch: int, rng: np.random.Generator) -> EpochStats:
    args, training = run.args, run.training
    run.wrapped.train()
    stats = EpochStats()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{training.recipe.epochs}", disable=not run.progress, leave=False)
    training.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(bar):
        if args.max_steps and i >= args.max_steps:
            break
        faces, labels, scene = unpack(batch)
        faces, labels = faces.to(run.device, non_blocking=True), labels.to(run.device, non_blocking=True)
        scene = scene.to(run.device, non_blocking=True) if scene is not None else None
        sync = (i + 1) % args.accumulate == 0
        context = run.wrapped.no_sync() if run.ddp.world > 1 and not sync else nullcontext()
        faces, targets, _ = training.targets(faces, labels, rng)
        with context, run.autocast():
            loss, terms, logits = run.wrapped(faces, targets, scene)
        with context:
            run.scaler.scale(loss / args.accumulate).backward()
        if sync:
            training.set_lr(run.step, run.steps_per_epoch)
            run.scaler.step(training.optimizer)
            run.scaler.update()
            training.optimizer.zero_grad(set_to_none=True)
            run.step += 1
        stats.add(float(loss.detach()), terms, logits, labels)
        bar.set_postfix(loss=f"{stats.losses[-1]:.3f}")
        if run.writer and sync:
            run.writer.add_scalar("train/loss", stats.losses[-1], run.step)
            for name, value in terms.items():
                run.writer.add_scalar(f"train/{name}", float(value), run.step)
            for name, lr in training.lrs().items():
                run.writer.add_scalar(f"lr/{name}", lr, run.step)
    return stats


def write_epoch(run: Run, record: dict[str, Any]) -> None:
    with open(run.args.out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if run.writer:
        epoch = record["epoch"]
        for name, value in record["loss_terms"].items():
            run.writer.add_scalar(f"epoch/{name}", value, epoch)
        for name, lr in record["lr"].items():
            run.writer.add_scalar(f"epoch/lr/{name}", lr, epoch)
        for key in ("loss", "val_loss", "val_uar", "val_war"):
            if record.get(key) is not None:
                run.writer.add_scalar(f"epoch/{key}", record[key], epoch)
        for key in ("uar", "war"):
            if key in record:
                run.writer.add_scalar(f"test/{key}", record[key], epoch)
    log.info("epoch %d: %s", record["epoch"], ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()
        if k not in ("epoch", "loss_terms", "lr")))


def set_up(args) -> tuple[Run, Any, Selection, int]:
    """Distributed set-up, the recipe, the training, the loaders, the run directory; then resume if asked.
    Returns (run, loaders, selection, first epoch)."""
    ddp = init_distributed(args.device)
    device = process_device(args.device, ddp)
    seed_everything(args.seed + ddp.rank)
    recipe = load_recipe(args.model, args.dataset, {"epochs": args.epochs, "batch_size": args.batch_size,
                                                    "lr": args.lr, "backbone": args.backbone}, path=args.recipe)
    training = build_training(args.model, recipe, dataset=args.dataset, image_size=args.image_size,
                              clip_checkpoint=args.clip_checkpoint, quick_gelu=args.quick_gelu,
                              clip_tag=args.clip_tag, device=device)
    recipe = training.recipe
    if ddp.main and (activation := activation_of(training.model)):
        log.info("activation: %s", activation)
    loaders = build_loaders(args, recipe, training.model.bundle_cfg, ddp)
    use_amp = device.startswith("cuda") and recipe.amp and not args.no_amp
    wrapped = training.objective
    if ddp.world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            training.objective, device_ids=[ddp.local_rank] if device.startswith("cuda") else None,
            find_unused_parameters=True)  # OUS's loss switch leaves its auxiliary heads out of some steps
    steps = max(1, min(len(loaders.train), args.max_steps or len(loaders.train)) // args.accumulate)
    run = Run(args, training, wrapped, device, ddp, torch.amp.GradScaler("cuda", enabled=use_amp),
              (lambda: torch.autocast("cuda", dtype=torch.float16)) if use_amp else nullcontext, steps)
    selection = Selection(recipe.select_by)
    start = 0
    if args.resume:
        start, run.step = resume(args.out, training, run.scaler, selection)
        if ddp.main:
            log.info("resumed from %s at epoch %d", args.out / "last.pt", start + 1)
    if ddp.main:
        from torch.utils.tensorboard import SummaryWriter

        args.out.mkdir(parents=True, exist_ok=True)
        resolved = recipe.model_dump(mode="json", by_alias=True) | {
            "factory": training.factory, "activation": activation_of(training.model), "world": ddp.world,
            "split_sizes": loaders.sizes}
        (args.out / "recipe.json").write_text(json.dumps(resolved, indent=2))
        run.writer = SummaryWriter(str(args.out / "tb"))
    return run, loaders, selection, start


def overfitted(record: dict[str, Any], recipe) -> bool:
    """The recipe's stop rule on training accuracy (OUS: above 80 %) holds for this epoch's record."""
    accuracy = record.get("train_acc")
    return recipe.stop_train_accuracy is not None and accuracy is not None and accuracy > recipe.stop_train_accuracy


def last_record(out) -> dict[str, Any]:
    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return json.loads(lines[-1]) if lines else {}


def run(args) -> dict[str, Any]:
    run_, loaders, selection, start = set_up(args)
    training, ddp, recipe = run_.training, run_.ddp, run_.training.recipe
    record: dict[str, Any] = {}
    if start and training.plateau is not None and training.plateau.exhausted(recipe):
        log.info("the resumed run had already stopped (learning rate below %g): nothing to train",
                 training.plateau.stop_lr)
        start = recipe.epochs
    if start and overfitted(last_record(args.out), recipe):
        log.info("the resumed run had already stopped (training accuracy above %g): nothing to train",
                 recipe.stop_train_accuracy)
        start = recipe.epochs
    for epoch in range(start, recipe.epochs):
        if loaders.train_sampler is not None:
            loaders.train_sampler.set_epoch(epoch)
        # the batch mixing's draws, seeded per epoch so that a resumed run mixes as the uninterrupted one would
        rng = np.random.default_rng((args.seed, ddp.rank, epoch))
        started = time.perf_counter()
        stats = train_one_epoch(run_, loaders.train, epoch, rng)
        record = {"epoch": epoch + 1, **stats.means(ddp), "lr": training.lrs()}
        if loaders.validation is not None:
            record |= validate(training, loaders.validation, run_.device, ddp, run_.autocast, run_.progress)
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == recipe.epochs:
            targets, predictions = predict(training.model, loaders.test, run_.device, ddp, run_.progress)
            metrics = summarise(targets, predictions, training.model.bundle_cfg["labels"])
            record |= {"uar": metrics["uar"], "war": metrics["war"]}
        record["seconds"] = round(time.perf_counter() - started, 2)
        is_best = selection.better(record)
        if training.plateau is not None and record.get(training.plateau.monitor) is not None:
            training.plateau.step(record[training.plateau.monitor])  # before saving, so a resume continues it
        if ddp.main:
            save_epoch(args.out, training, dataset=args.dataset, fold=args.fold, epoch=epoch, step=run_.step,
                       scaler=run_.scaler, record=record, selection=selection, is_best=is_best,
                       crop=loaders.crop)
            write_epoch(run_, record)
        if training.plateau is not None and training.plateau.exhausted(recipe):
            log.info("learning rate fell below %g: stopping (plateau schedule)", training.plateau.stop_lr)
            break
        if overfitted(record, recipe):
            log.info("training accuracy %.3f exceeds %g: stopping (the recipe's overfitting rule)",
                     record["train_acc"], recipe.stop_train_accuracy)
            break
    calibration = None
    if loaders.validation is not None:  # temperature scaling of best.pt on the held-out split
        calibration = calibrate_best(args.out, training, loaders.validation, run_.device, ddp, run_.progress)
        if calibration and ddp.main:
            log.info("best.pt calibrated on the validation split: temperature %.3f, ECE %.4f -> %.4f",
                     calibration["temperature"], calibration["ece_before"], calibration["ece_after"])
    else:
        log.info("no validation split in the recipe: best.pt keeps temperature 1 (not calibrated)")
    if run_.writer:
        run_.writer.close()
    finish(ddp)
    return record | {"select_by": selection.metric, "best": selection.best, "out": str(args.out),
                     "calibration": calibration}
