"""int8 bundles for CPUs: ONNX Runtime's dynamic quantisation of every graph in a bundle.

Weights of the matrix multiplies become int8 (per output channel), activations are quantised on the fly; the rest
stays float32. On a CPU without VNNI (AVX2 only) the int8 multiply runs at about 1.8x the fp32 rate, so a ViT window
gets ~1.5x cheaper; with a smaller input (`--image-size`) the two multiply. GPUs gain nothing from it: use --fp16.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from export.onnx_export import rewrite_graphs
from service.bundle import ModelBundle

log = logging.getLogger(__name__)


def quantize_graph(path: Path) -> None:
    """Rewrite one ONNX graph in place with int8 matrix-multiply weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        quantised = Path(tmp) / path.name
        # per_channel: one scale per output column, measured faster and closer to fp32 than per-tensor here.
        quantize_dynamic(str(path), str(quantised), weight_type=QuantType.QInt8, per_channel=True)
        quantised.replace(path)


def quantize_bundle(bundle: ModelBundle) -> ModelBundle:
    """model.onnx and the frame-cache graphs as int8, their sha256 updated in bundle.json."""
    quantised = rewrite_graphs(bundle, quantize_graph, precision="int8")
    log.info("bundle %s quantised to int8", bundle.spec.name)
    return quantised
