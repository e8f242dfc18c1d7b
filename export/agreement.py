"""Agreement of a cheaper bundle with the fp32 model it came from: top-1 agreement and the largest probability
difference on the same real face windows (a smaller-input bundle sees the same faces cropped smaller)."""

from __future__ import annotations

import numpy as np

from service.bundle import Agreement, ModelBundle


def torch_probabilities(model, inputs: dict) -> np.ndarray:
    from export.onnx_export import torch_logits
    from service.inference.engine import softmax

    return softmax(torch_logits(model, inputs))


def bundle_probabilities(bundle: ModelBundle, inputs: dict, session=None) -> np.ndarray:
    """The bundle's whole graph on already normalised windows, on the CPU (through `session` if one is open)."""
    import onnxruntime as ort

    from service.inference.engine import softmax

    session = session or ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
    return softmax(logits.astype(np.float32))


def compare(probs: np.ndarray, reference: np.ndarray, what: str) -> Agreement:
    return Agreement(reference=what, windows=len(probs), top1=float((probs.argmax(1) == reference.argmax(1)).mean()),
                     max_prob_diff=float(np.abs(probs - reference).max()))
