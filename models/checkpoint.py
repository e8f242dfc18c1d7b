"""Trained-model checkpoints: what `models.train` writes and `models.evaluate`, `export` and the PyTorch backend
read. A checkpoint holds how to rebuild the model (registry name and factory arguments, the activation included),
its full state dict, its fingerprint (models/fingerprint.py) with the build facts that explain a mismatch (method
config, bundle config, library versions), and its provenance (dataset, fold, epoch, metrics); a resumable one also
holds optimizer, scheduler, scaler and RNG state. `load_model` rebuilds, recomputes the fingerprint and refuses a
model that is not the one trained."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from service.bundle import file_sha256

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2  # 2: fingerprint, build facts and the activation in the factory
READABLE_FORMATS = (1, 2)  # 1: no fingerprint; loaded with a warning that nothing proves the rebuild


class CheckpointError(ValueError):
    pass


def build_facts(model: torch.nn.Module) -> dict[str, Any]:
    """What decides the rebuilt model's numbers beyond the factory: the method's config (models/configs, whose
    defaults may change), its bundle config, its activation, and the library versions."""
    import open_clip

    from models.registry import CONFIG_DIR, load_config

    cfg = model.bundle_cfg
    backbone = getattr(model, "backbone", None)
    activation = ("quick_gelu" if backbone.quick_gelu else "gelu") if hasattr(backbone, "quick_gelu") else None
    method_config = (load_config(cfg["method"], cfg["backbone"]) if (CONFIG_DIR / f"{cfg['method']}.json").is_file()
                     else None)
    return {"config": method_config, "bundle_cfg": dict(cfg),
            "activation": activation,
            "versions": {"torch": str(torch.__version__), "open_clip": str(open_clip.__version__)}}


def save_checkpoint(path: str | Path, model: torch.nn.Module, *, name: str, factory: dict[str, Any],
                    training: dict[str, Any], resume: dict[str, Any] | None = None,
                    fingerprint: dict[str, Any] | None = None) -> Path:
    """Write atomically (a crash mid-write never leaves a truncated last.pt behind). `fingerprint`: the model's, when
    the caller already computed it for this state (last.pt and best.pt of one epoch share it)."""
    from models.fingerprint import model_fingerprint

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model  # DDP wraps the model
    payload = {"format": CHECKPOINT_FORMAT, "model": name, "factory": factory, "training": training,
               "state_dict": module.state_dict(), "resume": resume,
               "fingerprint": fingerprint or model_fingerprint(module), "build": build_facts(module)}
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
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS or "state_dict" not in payload:
        formats = ", ".join(map(str, READABLE_FORMATS))
        raise CheckpointError(f"{path} is not a models.train checkpoint (format {formats})")
    return payload


def load_model(path: str | Path, with_fingerprint: bool = False) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model in eval mode, and the checkpoint's metadata (without the tensors; with the saved
    fingerprint when asked). The rebuilt model must reproduce that fingerprint, else CheckpointError names what
    differs."""
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
    model.eval()
    verify_fingerprint(path, model, payload)
    leave_out = ("state_dict", "resume") if with_fingerprint else ("state_dict", "resume", "fingerprint")
    meta = {k: v for k, v in payload.items() if k not in leave_out}
    meta["sha256"] = file_sha256(path)
    return model, meta


def verify_fingerprint(path: str | Path, model: torch.nn.Module, payload: dict[str, Any]) -> None:
    from models.fingerprint import fingerprint_difference, model_fingerprint

    saved = payload.get("fingerprint")
    if saved is None:
        log.warning("%s predates fingerprints (checkpoint format 1): nothing proves the rebuilt %s is the model as "
                    "trained (its activation was not recorded either); retrain, or re-save it with this version",
                    path, payload["model"])
        return
    diff, tolerance = fingerprint_difference(saved, model_fingerprint(model)["logits"])
    if diff <= tolerance:
        return
    differences = build_differences(payload.get("build") or {}, build_facts(model))
    raise CheckpointError(
        f"{path}: the rebuilt {payload['model']} is not the model as trained: its logits on the fingerprint input "
        f"differ from those saved at training time by {diff:.3g} (tolerance {tolerance:.3g}). "
        + (f"What differs: {'; '.join(differences)}" if differences else
           "Its config, activation and library versions are as saved: the code of the method changed"))


def build_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: saved -> now' for every build fact that changed (nested dicts compared key by key)."""
    found = []
    for key in sorted(set(saved) | set(current)):
        was, now = saved.get(key), current.get(key)
        if isinstance(was, dict) and isinstance(now, dict):
            found += [f"{key}.{d}" for d in build_differences(was, now)]
        elif was != now:
            found.append(f"{key}: {was!r} at training, {now!r} now")
    return found
