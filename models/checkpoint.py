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


def numpy_array_globals() -> list[tuple[object, str]]:
    """What a pickled numpy array needs besides plain data (its reconstruction function, ndarray, dtypes), under
    both module names: numpy 1.x pickles say numpy.core, numpy 2 renamed the package numpy._core. Creating an array
    runs no code of the file's choosing, so these are safe to allow in torch's weights-only unpickler."""
    import numpy as np
    from numpy._core import multiarray

    dtype_classes = {type(np.dtype(t)) for t in (np.float32, np.float64, np.int64, np.int32, np.uint32, np.bool_)}
    return ([(multiarray._reconstruct, f"{package}.multiarray._reconstruct") for package in ("numpy.core",
                                                                                            "numpy._core")]
            + [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
            + [(cls, f"numpy.dtypes.{cls.__name__}") for cls in dtype_classes])


def load_weights_only(path: Path, allowed: list[tuple[object, str]]) -> Any:
    """torch.load with the weights-only unpickler: tensors, plain data and the `allowed` globals, nothing that can
    run code. A file that carries any other global is refused naming it, before anything is unpickled."""
    names = {name for _, name in allowed}
    try:
        # Lists the globals outside torch's own allow-list without unpickling anything.
        foreign = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) if g not in names]
    except Exception as exc:  # not a torch zip file, truncated, ...
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if foreign:
        raise CheckpointError(f"{path} carries {', '.join(sorted(foreign))}; refusing to unpickle it (it could run "
                              "code): only tensors and plain data are loaded")
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} could not be read with the weights-only unpickler ({type(exc).__name__}: "
                              f"{exc})") from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A models.train checkpoint, read with the weights-only unpickler (a shared best.pt cannot run code); the
    numpy arrays of its saved random state are the only globals allowed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (write one with `python -m models.train ... --out RUN`;"
                              " RUN/best.pt and RUN/last.pt are checkpoints)")
    payload = load_weights_only(path, numpy_array_globals())
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a models.train checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model in eval mode, and the checkpoint's metadata (without the tensors)."""
    from models.backbone import weights_loaded_next
    from models.registry import create_model

    payload = read_checkpoint(path)
    # The factory builds the architecture with random CLIP weights; the state dict then supplies every tensor.
    with weights_loaded_next():
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
