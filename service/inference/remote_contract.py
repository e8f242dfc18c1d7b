"""Contract 1 travelling with a served model: what a Triton model must be for the service to send it windows.

`python -m export triton` writes a `RemoteContract` into each model's config.pbtxt as the parameter
`emotion_contract` (JSON): the bundle's bundle.json, the model's role (the whole graph, or the frame encoder or
window head of a split bundle) and how its pixels arrive (uint8, normalised by the graph itself, or float32
normalised by the client). A robot reads it from the server's model configuration, so it needs nothing but the URL,
and checks it against the served model's metadata (`differences`) before it sends a window. Pure: no client here.
"""

from __future__ import annotations

import json
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from service.bundle import BundleSpec

CONTRACT_PARAMETER = "emotion_contract"
CONTRACT_VERSION = 1
Role = Literal["whole", "frame_encoder", "window_head"]
Pixels = Literal["uint8", "float32"]
# KServe v2 datatypes (the metadata's names; config.pbtxt writes them with a TYPE_ prefix)
DATATYPES = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8"}


class ServedTensor(NamedTuple):
    name: str
    datatype: str  # KServe v2: FP32, UINT8, ...
    dims: tuple[int, ...]  # without the batch axis, which Triton adds (max_batch_size > 0)


class RemoteContract(BaseModel):
    model_config = ConfigDict(frozen=True)

    format_version: int = CONTRACT_VERSION
    role: Role
    pixels: Pixels  # uint8: [.., H, W, C] uint8 in, the graph normalises; float32: [.., C, H, W] normalised in
    bundle: BundleSpec
    parts: dict[Literal["frame_encoder", "window_head"], str] | None = None  # role whole of a split bundle

    def to_parameter(self) -> str:
        return self.model_dump_json(exclude_none=True)


def part_names(model: str) -> dict[str, str]:
    """Triton model names of a split bundle's two graphs, beside the whole graph's `model`."""
    return {"frame_encoder": f"{model}-frame-encoder", "window_head": f"{model}-window-head"}


def _pixels(bundle: BundleSpec, leading: tuple[int, ...], pixels: Pixels, dtype: str) -> tuple[str, tuple[int, ...]]:
    c, s = bundle.channels, bundle.image_size
    if pixels == "uint8":
        return "UINT8", leading + (s, s, c)
    return DATATYPES[dtype], leading + (c, s, s)


def served_tensors(bundle: BundleSpec, role: Role, pixels: Pixels) -> tuple[list[ServedTensor], list[ServedTensor]]:
    """The inputs and outputs a model of this role serves (pure), batch axis excluded."""
    # The logits, and the model's own valence/arousal [2] where the bundle names such an output (bundle.json).
    outputs = [ServedTensor("logits", DATATYPES[bundle.output.dtype], (len(bundle.labels),))]
    if bundle.valence_arousal:
        outputs.append(ServedTensor(bundle.valence_arousal, "FP32", (2,)))
    if role == "whole":
        inputs = [ServedTensor(t.name, *_pixels(bundle, (bundle.num_frames,), pixels, t.dtype)) for t in bundle.inputs]
        return inputs, outputs
    if bundle.frame_cache is None:
        raise ValueError(f"bundle {bundle.name} has no frame encoder and window head")
    features = (bundle.frame_cache.feature_dim,)
    if role == "frame_encoder":
        return ([ServedTensor("frames", *_pixels(bundle, (), pixels, bundle.inputs[0].dtype))],
                [ServedTensor("features", "FP32", features)])
    names = ["features", "scene_features"] if bundle.needs_scene else ["features"]
    return [ServedTensor(n, "FP32", (bundle.num_frames,) + features) for n in names], outputs


def read_contract(config: dict) -> RemoteContract:
    """The contract in a model configuration (KServe/Triton JSON form); ValueError says what is missing or wrong."""
    parameter = (config.get("parameters") or {}).get(CONTRACT_PARAMETER)
    if not parameter or not parameter.get("string_value"):
        raise ValueError(f"its config.pbtxt has no '{CONTRACT_PARAMETER}' parameter (write the repository with "
                         "`python -m export triton`)")
    try:
        return RemoteContract.model_validate(json.loads(parameter["string_value"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"its '{CONTRACT_PARAMETER}' parameter is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"its '{CONTRACT_PARAMETER}' parameter: {'.'.join(map(str, first['loc']))}: "
                         f"{first['msg']}") from None


def _served(tensors: list[dict], batched: bool) -> dict[str, tuple[str, tuple[int, ...]]]:
    out = {}
    for t in tensors:
        shape = tuple(int(d) for d in t.get("shape", []))
        out[t["name"]] = (t.get("datatype", ""), shape[1:] if batched else shape)
    return out


def differences(contract: RemoteContract, metadata: dict, max_batch_size: int) -> list[str]:
    """What differs between the tensors the contract promises and those the server says the model has (its
    metadata, KServe JSON form); empty when they agree (pure)."""
    if max_batch_size < 1:
        return [f"max_batch_size is {max_batch_size}: the model must batch (max_batch_size >= 1)"]
    found = []
    inputs, outputs = served_tensors(contract.bundle, contract.role, contract.pixels)
    for kind, wanted, served in (("input", inputs, _served(metadata.get("inputs", []), True)),
                                 ("output", outputs, _served(metadata.get("outputs", []), True))):
        if kind == "input" and set(served) != {t.name for t in wanted}:
            found.append(f"inputs are {sorted(served)}, the contract needs {sorted(t.name for t in wanted)}")
            continue
        for tensor in wanted:
            if tensor.name not in served:
                found.append(f"no {kind} {tensor.name!r} (it has {sorted(served)})")
                continue
            datatype, dims = served[tensor.name]
            if datatype != tensor.datatype:
                found.append(f"{kind} {tensor.name!r} is {datatype}, the contract needs {tensor.datatype}")
            if dims != tensor.dims:
                found.append(f"{kind} {tensor.name!r} has dims {list(dims)}, the contract needs {list(tensor.dims)}")
    return found
