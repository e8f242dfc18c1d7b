"""Trained-model checkpoints: what `models.train` writes and `models.evaluate`, `export` and the PyTorch backend
read. A checkpoint holds how to rebuild the model (registry name and factory arguments), its full state dict, and
its provenance (dataset, fold, epoch, metrics); a resumable one also holds optimizer, scheduler, scaler and RNG
state."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: str | Path, model: torch.nn.Module, *, name: str, factory: dict[str, Any],
                    training: dict[str, Any], resume: dict[str, Any] | None = None) -> Path:
    """Write atomically (a crash mid-write never leaves a truncated last.pt behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model  # DDP wraps the model
    payload = {"format": CHECKPOINT_FORMAT, "model": name, "factory": factory, "training": training,
               "state_dict": module.state_dict(), "resume": resume}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (write one with `python -m models.train ... --out RUN`;"
                              " RUN/best.pt and RUN/last.pt are checkpoints)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a models.train checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model in eval mode, and the checkpoint's metadata (without the tensors)."""
    from models.registry import create_model

    payload = read_checkpoint(path)
    # The factory builds the architecture with random CLIP weights; the state dict then supplies every tensor.
    model = create_model(payload["model"], **payload["factory"])
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match model {payload['model']} {payload['factory']}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "resume")}
    meta["sha256"] = file_sha256(path)
    return model.eval(), meta


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
