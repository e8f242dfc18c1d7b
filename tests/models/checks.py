"""Checks shared by the model tests: trainable sets, gradient flow, overfitting, ONNX parity."""

import io

import numpy as np
import torch


def trainable_names(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def assert_gradients_reach_exactly_the_trainable(model: torch.nn.Module, loss: torch.Tensor) -> None:
    """After backward: every trainable parameter has a non-zero gradient, every frozen one none."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    leaked = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not missing, f"no gradient reached {missing}"
    assert not leaked, f"frozen parameters got gradients: {leaked}"


def overfit(model: torch.nn.Module, inputs: dict, labels: torch.Tensor, steps: int, lr: float) -> tuple[float, float]:
    """Adam on the model's own loss over one tiny batch; returns (first loss, last loss)."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        out = model.loss(inputs["faces"], labels, scene=inputs.get("scene"))
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        losses.append(float(out.total.detach()))
    model.eval()
    return losses[0], losses[-1]


def onnx_parity(model: torch.nn.Module, inputs: dict, check_inputs: dict) -> float:
    """Export as export/ does (TorchScript exporter, opset 17, dynamic batch), run ONNX Runtime on CPU on
    `check_inputs` (another batch size), return the largest |onnx - torch| logit difference."""
    import onnxruntime as ort

    model = model.eval()
    names = list(inputs)
    buffer = io.BytesIO()
    torch.onnx.export(model, tuple(inputs[n] for n in names), buffer, dynamo=False, opset_version=17,
                      input_names=names, output_names=["logits"],
                      dynamic_axes={n: {0: "batch"} for n in names + ["logits"]})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {n: check_inputs[n].numpy() for n in names})
    with torch.no_grad():
        torch_logits = model(*(check_inputs[n] for n in names)).numpy()
    assert onnx_logits.shape == torch_logits.shape
    return float(np.abs(onnx_logits - torch_logits).max())
