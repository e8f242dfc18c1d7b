"""A model bundle as a Triton Inference Server model repository entry, so one GPU server can serve many robots with
the same ONNX graph (Triton's onnxruntime backend, dynamic batching across robots' requests).

    REPO/<name>/config.pbtxt
    REPO/<name>/labels.txt        one label per line, in the model's output order
    REPO/<name>/bundle.json       the bundle's contract, so clients know the preprocessing
    REPO/<name>/1/model.onnx
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from service.bundle import BUNDLE_JSON, ModelBundle

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}


def triton_model_name(name: str) -> str:
    """Triton model names become directory names and URL path parts: keep them plain."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def triton_config(bundle: ModelBundle, max_batch_size: int = 16, max_queue_delay_us: int = 2000,
                  preferred_batch_sizes: tuple[int, ...] = (4, 8, 16), gpu_instances: int = 1,
                  tensorrt: bool = False) -> str:
    """config.pbtxt text (pure). Dims exclude the batch axis, which Triton adds through max_batch_size."""
    spec = bundle.spec

    def tensor(t, extra: str = "") -> str:
        dims = ", ".join(str(d) for d in t.shape[1:])
        return f'  {{\n    name: "{t.name}"\n    data_type: {TRITON_DTYPES[t.dtype]}\n    dims: [ {dims} ]{extra}\n  }}'

    preferred = ", ".join(str(b) for b in preferred_batch_sizes if b <= max_batch_size)
    lines = [
        f'name: "{triton_model_name(spec.name)}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        "input [\n" + ",\n".join(tensor(t) for t in spec.inputs) + "\n]",
        "output [\n" + tensor(spec.output, '\n    label_filename: "labels.txt"') + "\n]",
        f"dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n  max_queue_delay_microseconds: "
        f"{max_queue_delay_us}\n}}",
        f"instance_group [\n  {{\n    count: {gpu_instances}\n    kind: KIND_GPU\n  }}\n]",
    ]
    if tensorrt:
        lines.append('optimization {\n  execution_accelerators {\n    gpu_execution_accelerator : [ {\n'
                     '      name : "tensorrt"\n      parameters { key: "precision_mode" value: "FP16" }\n'
                     '    } ]\n  }\n}')
    return "\n".join(lines) + "\n"


def write_triton_repository(bundle: ModelBundle, repository: str | Path, version: int = 1, **config) -> Path:
    model_dir = Path(repository) / triton_model_name(bundle.spec.name)
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copy2(bundle.onnx_path, model_dir / str(version) / "model.onnx")
    shutil.copy2(bundle.directory / BUNDLE_JSON, model_dir / BUNDLE_JSON)
    (model_dir / "labels.txt").write_text("\n".join(bundle.spec.labels) + "\n")
    (model_dir / "config.pbtxt").write_text(triton_config(bundle, **config))
    return model_dir
