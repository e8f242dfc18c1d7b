"""A model bundle as Triton Inference Server model repository entries, so one GPU server serves many robots with the
same ONNX graphs (Triton's onnxruntime backend, dynamic batching across robots' requests).

    REPO/<name>/config.pbtxt               the whole graph; parameter `emotion_contract`: the bundle's contract
    REPO/<name>/labels.txt                 one label per line, in the model's output order
    REPO/<name>/bundle.json                the bundle's bundle.json, for people (robots read the parameter)
    REPO/<name>/1/model.onnx               (--backend python: and 1/model.py, running it with ONNX Runtime)
    REPO/<name>-frame-encoder/...          a split bundle's frame encoder and window head as models of their own:
    REPO/<name>-window-head/...            a robot sends only the frames it has not encoded before

By default the graphs take uint8 pixels as the crops are made ([.., H, W, C]) and normalise them themselves (Cast,
the bundle's mean and std, Transpose, prepended to the graph and checked against the service's own normalisation):
a quarter of the bytes of float32 on the network. `pixels="float32"` serves the bundle's graphs unchanged.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from service.bundle import BUNDLE_JSON, ModelBundle
from service.inference.engine import normalise
from service.inference.remote_contract import (CONTRACT_PARAMETER, Pixels, RemoteContract, Role, part_names,
                                               served_tensors)

log = logging.getLogger(__name__)

Backend = Literal["onnxruntime", "python"]
PYTHON_MODEL = Path(__file__).with_name("triton_model.py")
UINT8_TOLERANCE = 1e-4  # largest |logits or features of the uint8 graph - those of the bundle's graph|


def triton_model_name(name: str) -> str:
    """Triton model names become directory names and URL path parts: keep them plain."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def triton_config(bundle: ModelBundle, role: Role = "whole", pixels: Pixels = "uint8", max_batch_size: int = 16,
                  max_queue_delay_us: int = 2000, preferred_batch_sizes: tuple[int, ...] = (4, 8, 16),
                  instances: int = 1, kind: Literal["gpu", "cpu"] | None = None, backend: Backend = "onnxruntime",
                  tensorrt: bool = False, threads: int | None = None) -> str:
    """config.pbtxt text of one model (pure). Dims exclude the batch axis, which Triton adds through max_batch_size:
    windows for the whole graph and the window head, frames (windows x frames, x2 with scene crops) for the frame
    encoder. The contract goes in as the parameter `emotion_contract` (service/inference/remote_contract.py)."""
    spec = bundle.spec
    name = triton_model_name(spec.name)
    parts = part_names(name) if spec.frame_cache is not None else None
    inputs, outputs = served_tensors(spec, role, pixels)
    if role == "frame_encoder":
        max_batch_size *= spec.num_frames * (2 if spec.needs_scene else 1)
        preferred_batch_sizes = ()
    contract = RemoteContract(role=role, pixels=pixels, bundle=spec, parts=parts if role == "whole" else None)

    def tensor(t, extra: str = "") -> str:
        dims = ", ".join(str(d) for d in t.dims)
        return f'  {{\n    name: "{t.name}"\n    data_type: TYPE_{t.datatype}\n    dims: [ {dims} ]{extra}\n  }}'

    labels = '\n    label_filename: "labels.txt"'
    preferred = ", ".join(str(b) for b in preferred_batch_sizes if b <= max_batch_size)
    batching = f"  preferred_batch_size: [ {preferred} ]\n" if preferred else ""
    kind = kind or ("cpu" if backend == "python" else "gpu")
    parameters = {CONTRACT_PARAMETER: contract.to_parameter()}
    if threads is not None:
        parameters["intra_op_thread_count"] = str(threads)  # the onnxruntime backend's name; model.py reads it too
    lines = [
        f'name: "{name if role == "whole" else parts[role]}"',
        f'backend: "{backend}"',
        f"max_batch_size: {max_batch_size}",
        "input [\n" + ",\n".join(tensor(t) for t in inputs) + "\n]",
        "output [\n" + ",\n".join(tensor(t, labels if t.name == "logits" else "") for t in outputs) + "\n]",
        f"dynamic_batching {{\n{batching}  max_queue_delay_microseconds: {max_queue_delay_us}\n}}",
        f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]",
    ] + [f"parameters {{\n  key: {pbtxt_string(key)}\n  value: {{ string_value: {pbtxt_string(value)} }}\n}}"
         for key, value in parameters.items()]
    # One inference of zeros while the model loads, so that the first robot's window does not pay the cold start
    # (ONNX Runtime's first run, TensorRT's engine build): the model is READY only after it.
    warmup_inputs = "".join(f'\n    inputs {{\n      key: "{t.name}"\n      value: {{ data_type: TYPE_{t.datatype} '
                            f'dims: [ {", ".join(str(d) for d in t.dims)} ] zero_data: true }}\n    }}' for t in inputs)
    lines.append(f'model_warmup [\n  {{\n    name: "zeros"\n    batch_size: 1{warmup_inputs}\n  }}\n]')
    if tensorrt and backend == "onnxruntime":
        lines.append('optimization {\n  execution_accelerators {\n    gpu_execution_accelerator : [ {\n'
                     '      name : "tensorrt"\n      parameters { key: "precision_mode" value: "FP16" }\n'
                     '    } ]\n  }\n}')
    return "\n".join(lines) + "\n"


def _graphs(bundle: ModelBundle) -> dict[Role, Path]:
    graphs: dict[Role, Path] = {"whole": bundle.onnx_path}
    if bundle.spec.frame_cache is not None:
        graphs["frame_encoder"] = bundle.directory / bundle.spec.frame_cache.encoder
        graphs["window_head"] = bundle.directory / bundle.spec.frame_cache.head
    return graphs


def write_triton_repository(bundle: ModelBundle, repository: str | Path, version: int = 1, pixels: Pixels = "uint8",
                            backend: Backend = "onnxruntime", **config) -> list[Path]:
    """One model directory per graph (the whole graph first, then a split bundle's encoder and head); returns them.
    `config`: triton_config's batching, instance and accelerator options."""
    spec = bundle.spec
    name = triton_model_name(spec.name)
    names = {"whole": name} | (part_names(name) if spec.frame_cache is not None else {})
    written = []
    for role, graph in _graphs(bundle).items():
        model_dir = Path(repository) / names[role]
        (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
        target = model_dir / str(version) / "model.onnx"
        if pixels == "uint8" and role != "window_head":
            with_uint8_pixels(graph, target, spec.mean, spec.std)
        else:
            shutil.copy2(graph, target)
        if backend == "python":
            shutil.copy2(PYTHON_MODEL, model_dir / str(version) / "model.py")
        shutil.copy2(bundle.directory / BUNDLE_JSON, model_dir / BUNDLE_JSON)
        if role != "frame_encoder":
            (model_dir / "labels.txt").write_text("\n".join(spec.labels) + "\n")
        (model_dir / "config.pbtxt").write_text(triton_config(bundle, role, pixels, backend=backend, **config))
        written.append(model_dir)
    return written


def with_uint8_pixels(source: Path, target: Path, mean: list[float], std: list[float],
                      tolerance: float = UINT8_TOLERANCE) -> float:
    """Write `source` with its pixel inputs (faces, scene; frames of a frame encoder) taking uint8 crops as the
    service makes them ([.., H, W, C]) and normalising them in the graph as the service does (x / 255 - mean) / std,
    then [.., C, H, W]. Checked against the service's normalise() + the original graph on random crops with ONNX
    Runtime; returns the largest difference (ValueError above `tolerance`)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ValueError("uint8 pixels need the onnx package (pip install -e '.[research]'), or use "
                         "--float-pixels") from None
    model = onnx.load(str(source))
    graph = model.graph
    pixel_inputs = [i for i in graph.input if i.name in ("faces", "scene", "frames")]
    if not pixel_inputs:
        raise ValueError(f"{source} has no faces, scene or frames input")
    constants = {"u8_scale": np.asarray(1.0 / 255.0, np.float32), "u8_mean": np.asarray(mean, np.float32),
                 "u8_std": np.asarray(std, np.float32)}
    nodes = []
    for graph_input in pixel_inputs:
        name, dims = graph_input.name, list(graph_input.type.tensor_type.shape.dim)
        inner = f"{name}__normalised"
        for node in graph.node:
            node.input[:] = [inner if x == name else x for x in node.input]
        rank = len(dims)  # 5: [B, T, C, H, W]; 4: [N, C, H, W]
        nhwc = dims[:-3] + [dims[-2], dims[-1], dims[-3]]
        shape = [d.dim_param or d.dim_value for d in nhwc]
        graph_input.CopyFrom(helper.make_tensor_value_info(name, TensorProto.UINT8, shape))
        perm = list(range(rank - 3)) + [rank - 1, rank - 3, rank - 2]
        nodes += [helper.make_node("Cast", [name], [f"{name}__f"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [f"{name}__f", "u8_scale"], [f"{name}__s"]),
                  helper.make_node("Sub", [f"{name}__s", "u8_mean"], [f"{name}__m"]),
                  helper.make_node("Div", [f"{name}__m", "u8_std"], [f"{name}__n"]),
                  helper.make_node("Transpose", [f"{name}__n"], [inner], perm=perm)]
    graph.initializer.extend(numpy_helper.from_array(value, key) for key, value in constants.items())
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))
    worst = _uint8_parity(source, target, mean, std)
    if not worst <= tolerance:
        raise ValueError(f"the uint8 graph of {source.name} differs from the bundle's by {worst:.3g} (> {tolerance:g})")
    log.info("%s: uint8 pixels, normalised in the graph (max abs diff %.3g)", target, worst)
    return worst


def _uint8_parity(source: Path, target: Path, mean: list[float], std: list[float]) -> float:
    import onnxruntime as ort

    original = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    served = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    crops, feeds = {}, {}
    for graph_input in served.get_inputs():
        shape = [2 if not isinstance(d, int) else d for d in graph_input.shape]
        crops[graph_input.name] = rng.integers(0, 256, shape, dtype=np.uint8)
    for name, crop in crops.items():
        windows = crop if crop.ndim == 5 else crop[None]
        normalised = normalise(windows, mean, std)
        feeds[name] = normalised if crop.ndim == 5 else normalised[0]
    output = served.get_outputs()[0].name
    (want,) = original.run([output], feeds)
    (got,) = served.run([output], crops)
    return float(np.abs(got.astype(np.float32) - want.astype(np.float32)).max())
