"""ONNX files in the layouts `python -m export per-frame` reads, with random weights (never a download): the shapes,
names, opsets and quirks of the published files, small enough for a test.

- `hsemotion_graph`: as HSEmotion's convert_pt_to_onnx.py writes them: torch.onnx.export at opset 11, input "input"
  [batch_size, 3, S, S], output "output" [batch_size, 8 (+2 valence, arousal for *_mtl)].
- `ferplus_graph`: as the ONNX Model Zoo's emotion-ferplus-8.onnx: opset 8, IR version 3 (initialisers listed as
  inputs too), input "Input3" fixed at [1, 1, 64, 64] with a reshape to [1, -1] inside, output "Plus692_Output_0"
  [1, 8], raw 0..255 pixels scaled inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def hsemotion_graph(path: Path, size: int = 224, outputs: int = 10, seed: int = 0) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 7, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, outputs)).eval()
    with torch.no_grad():  # logits of a few units, valence/arousal of order one, as the real ones give
        model[-1].weight.mul_(4)
    torch.onnx.export(model, torch.randn(1, 3, size, size), str(path), dynamo=False, opset_version=11,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}})
    return path


def ferplus_graph(path: Path, seed: int = 0, channels: int = 1, size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    conv = rng.normal(0, 0.05, (8, channels, 5, 5)).astype(np.float32)
    fc = rng.normal(0, 0.5, (8 * 8 * 8, 8)).astype(np.float32)
    weights = {"scale": np.array(1 / 64.0, np.float32), "conv_w": conv,
               "conv_b": rng.normal(0, 0.1, 8).astype(np.float32),
               "flat_shape": np.array([1, -1], np.int64), "fc_w": fc, "fc_b": rng.normal(0, 0.1, 8).astype(np.float32)}
    nodes = [helper.make_node("Mul", ["Input3", "scale"], ["scaled"]),
             helper.make_node("Conv", ["scaled", "conv_w", "conv_b"], ["conv"], kernel_shape=[5, 5], pads=[2] * 4,
                              strides=[1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Reshape", ["pool", "flat_shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "fc_w"], ["fc"]),
             helper.make_node("Add", ["fc", "fc_b"], ["Plus692_Output_0"])]
    initializers = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inputs = [helper.make_tensor_value_info("Input3", TensorProto.FLOAT, [1, channels, size, size])] + [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in initializers]
    graph = helper.make_graph(nodes, "CNTKGraph", inputs,
                              [helper.make_tensor_value_info("Plus692_Output_0", TensorProto.FLOAT, [1, 8])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=3)
    onnx.save(model, str(path))
    return path
