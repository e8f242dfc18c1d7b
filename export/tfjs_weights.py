"""TensorFlow.js weights (a `*-weights_manifest.json` and its `.bin` shards) -> numpy arrays, decoded as TensorFlow.js
decodes them (tfjs-core `io/io_utils.ts` decodeWeights, 4.22).

A manifest is a list of weight groups; each group names its shard files (`paths`, read in order and concatenated)
and its weights (`name`, `shape`, `dtype`, and optionally `quantization`). Weights lie back to back in the group's
bytes, in manifest order; each group starts at byte 0 of its own shards. What is read here, as TensorFlow.js reads
it:

| manifest dtype | quantization | bytes per value | value |
|---|---|---|---|
| float32, int32, uint8, bool | none | 4, 4, 1, 1 | as stored (little-endian) |
| float32 | uint8 or uint16 with `min`, `scale` | 1 or 2 | q * scale + min (computed in double, stored as float32) |
| int32 | uint8 or uint16 with `min`, `scale` | 1 or 2 | Math.round(q * scale + min): halves up |
| float32 | float16 | 2 | IEEE half -> float32 |

face-api.js's models (npm `@vladmandic/face-api` 1.7.15, `model/`) use float32 (plain and uint8-quantised) and, in
ssd_mobilenetv1, uint8-quantised int32. Anything else (strings, complex64, a manifest whose sizes do not add up) is
refused with `TfjsWeightsError` naming the weight. The face-api conversions (export/faceapi_expression.py, and the
face recognition and landmark nets after it) read their files through `read_manifest` only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class TfjsWeightsError(ValueError):
    pass


_PLAIN = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "uint8": np.dtype("u1"), "bool": np.dtype("u1")}
_QUANTISED = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}


def _size(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def decode_weight(spec: dict, data: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One weight of a group's bytes starting at `offset` -> (array shaped as the manifest says, bytes used)."""
    name, dtype, shape = spec["name"], spec["dtype"], list(spec["shape"])
    count = _size(shape)
    quantization = spec.get("quantization")
    if quantization is None:
        if dtype not in _PLAIN:
            raise TfjsWeightsError(f"weight {name!r}: dtype {dtype!r} is not supported (only {', '.join(_PLAIN)})")
        stored = _PLAIN[dtype]
    else:
        qtype = quantization.get("dtype")
        if qtype not in _QUANTISED:
            raise TfjsWeightsError(f"weight {name!r}: unknown quantization dtype {qtype!r} (uint8, uint16, float16)")
        if qtype == "float16" and dtype != "float32":
            raise TfjsWeightsError(f"weight {name!r}: float16 quantization of {dtype} (TensorFlow.js allows float32)")
        if qtype != "float16" and not {"min", "scale"} <= quantization.keys():
            raise TfjsWeightsError(f"weight {name!r}: {qtype} quantization without min and scale")
        if dtype not in ("float32", "int32"):
            raise TfjsWeightsError(f"weight {name!r}: quantized {dtype} is not supported (float32, int32)")
        stored = _QUANTISED[qtype]
    length = count * stored.itemsize
    if offset + length > len(data):
        raise TfjsWeightsError(f"weight {name!r} needs bytes {offset}..{offset + length}, but its group has only "
                               f"{len(data)}: the manifest does not belong to these .bin files")
    raw = np.frombuffer(data, stored, count, offset)
    if quantization is None:
        values = raw.astype(bool) if dtype == "bool" else raw.copy()
    elif quantization["dtype"] == "float16":
        values = raw.astype(np.float32)
    else:
        real = raw.astype(np.float64) * float(quantization["scale"]) + float(quantization["min"])
        # JavaScript's Math.round rounds halves up (numpy's round goes to even)
        values = np.floor(real + 0.5).astype(np.int32) if dtype == "int32" else real.astype(np.float32)
    return values.reshape(shape), length


def read_manifest(manifest: str | Path) -> dict[str, np.ndarray]:
    """Every weight of a TensorFlow.js weights manifest, by name, with the shard files beside the manifest."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise TfjsWeightsError(f"TensorFlow.js weights manifest not found: {manifest}")
    try:
        groups = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise TfjsWeightsError(f"{manifest} is not JSON: {exc}") from None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "paths" in g and "weights" in g
                                               for g in groups):
        raise TfjsWeightsError(f"{manifest} is not a weights manifest (a list of groups with paths and weights)")
    weights: dict[str, np.ndarray] = {}
    for group in groups:
        shards = [manifest.parent / path for path in group["paths"]]
        missing = [str(p) for p in shards if not p.is_file()]
        if missing:
            raise TfjsWeightsError(f"{manifest} names shard files that are missing: {', '.join(missing)}")
        data = b"".join(p.read_bytes() for p in shards)
        offset = 0
        for spec in group["weights"]:
            if spec["name"] in weights:
                raise TfjsWeightsError(f"{manifest}: weight {spec['name']!r} appears twice")
            weights[spec["name"]], used = decode_weight(spec, data, offset)
            offset += used
        if offset != len(data):
            raise TfjsWeightsError(f"{manifest}: its weights use {offset} bytes of {len(data)} in "
                                   f"{', '.join(group['paths'])}: the manifest does not belong to these .bin files")
    return weights
