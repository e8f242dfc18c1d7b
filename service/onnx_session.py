"""One ONNX Runtime CPU session for a small embedded graph (the face detector, the face nets): one thread unless told,
no spinning, and a missing or unreadable file raised as the caller's own error naming it and how to get it."""

from __future__ import annotations

from pathlib import Path


def cpu_session(path: Path, threads: int, error: type[Exception], what: str, how_to_get: str):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path} ({how_to_get})")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Threads that spin while waiting burn a core between calls; a robot's CPU is shared.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise error(f"cannot load {what} {path}: {str(exc).splitlines()[0]} ({how_to_get})") from None
