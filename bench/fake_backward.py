"""Backward through an autograd graph without torch's engine, for fake CUDA tensors on a machine without a GPU.

torch's engine (2.14) asks the CUDA driver about each device's primary context before it runs a graph that touches
a CUDA tensor, and raises "hasPrimaryContext expects a valid device index" when there is no driver. `backward`
does the engine's work in Python: it calls each node of the graph (each is callable) once, in reverse topological
order, with the sum of the gradients flowing into it; before passing a gradient on it does what the engine's
validate_outputs does (sum a broadcast gradient to the input's shape, cast to its dtype, refuse a gradient on
another device, as a GPU run would). AccumulateGrad nodes fill `.grad` as in a real backward.

`released_saved_tensors()` around the forward makes each saved tensor freed once its node has used it, as the
engine does when the graph is not retained, so that memory counted during this backward matches the real one's.
Not replayed: hooks the engine would run (tensor and module backward hooks, DDP's), reentrant backward
(checkpointing), and the engine's stream synchronisation.
"""

from __future__ import annotations

import torch

ENGINE_ERROR = "hasPrimaryContext"  # what torch's engine raises for fake CUDA tensors without a driver


def _reverse_topological(root) -> list:
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((nxt, False) for nxt, _ in node.next_functions if nxt is not None and nxt not in seen)
    return order[::-1]


def _conform(grad: torch.Tensor, meta, node) -> torch.Tensor:
    if tuple(grad.shape) != tuple(meta.shape):
        grad = grad.sum_to_size(meta.shape)
    if grad.dtype != meta.dtype:
        grad = grad.to(meta.dtype)
    if grad.device != meta.device:
        if grad.dim():
            raise RuntimeError(f"invalid gradient for {node.name()}: expected device {meta.device} but got "
                               f"{grad.device}")
        grad = grad.to(meta.device)
    return grad


def backward(loss: torch.Tensor) -> None:
    """loss.backward() for a scalar `loss`, node by node (see the module's docstring)."""
    pending = {loss.grad_fn: [torch.ones_like(loss)]}
    with torch.no_grad():
        for node in _reverse_topological(loss.grad_fn):
            grads = pending.pop(node, None)
            if grads is None:  # no gradient reaches it
                continue
            outs = node(*grads)
            del grads
            for (nxt, index), grad in zip(node.next_functions, outs if isinstance(outs, tuple) else (outs,)):
                if nxt is None or grad is None:
                    continue
                grad = _conform(grad, nxt._input_metadata[index], nxt)
                inputs = pending.setdefault(nxt, [None] * len(nxt._input_metadata))
                inputs[index] = grad if inputs[index] is None else inputs[index] + grad
            del outs


def backward_anyhow(loss: torch.Tensor) -> str:
    """torch's engine where it runs, else `backward`; returns which ran ("torch" or "replayed")."""
    try:
        loss.backward()
        return "torch"
    except RuntimeError as exc:
        if ENGINE_ERROR not in str(exc):
            raise
    backward(loss)
    return "replayed"


class released_saved_tensors(torch.autograd.graph.saved_tensors_hooks):
    """Saved tensors kept here and dropped when their node unpacks them (once, as no graph is retained)."""

    def __init__(self):
        self._saved: dict[int, torch.Tensor] = {}
        self._next = 0

        def pack(tensor: torch.Tensor) -> int:
            self._next += 1
            self._saved[self._next] = tensor
            return self._next

        super().__init__(pack, self._saved.pop)
