"""Simulated CUDA on a machine without a GPU: tensors on a fake `cuda:0` (shapes, dtypes and devices, no data), what
a training step on them allocates, and the backward pass torch's own engine refuses there.

`simulated_cuda()` is the environment: PyTorch's FakeTensorMode, in which a tensor can be on `cuda` and a CPU
tensor meeting a CUDA one raises as on a GPU. The default device stays the CPU, as in a real run: a model is built
on the CPU and moved with `.to("cuda")`, and a tensor made without a device inside a forward is a CPU tensor, so
the mistake is caught. torch (2.14) needs four workarounds, each for one thing it cannot do on a fake device
without a driver:
- `module.to(device)` fails on fake parameters ("Couldn't swap"): parameters and buffers not on `device` are
  replaced by moved copies (what .to does on a GPU: other tensor attributes stay where they are; tied parameters
  stay tied);
- GRU without cuDNN runs `_thnn_fused_gru_cell`, which has no meta kernel: shape-only kernels are registered here
  (cuDNN's RNN asks the driver for its version, so it is switched off; a GPU would run cuDNN's GRU);
- scaled_dot_product_attention asks the device which kernel to run and, with no device, gets the math kernel,
  which keeps every attention matrix for backward; `DeviceAnswers` answers as a GPU of compute capability >= 8.0
  does: flash attention for fp16/bf16 without a mask, memory-efficient attention otherwise (it also answers a
  value read on the host, which a fake tensor does not have);
- torch.autocast("cuda") switches itself off without a driver: `cuda_autocast` sets the autocast state directly.
`LiveMemory` counts the bytes of every live storage (rounded to the caching allocator's 512-byte blocks) and keeps
the peak, the figure `torch.cuda.max_memory_allocated` reports on a GPU. torch's MemTracker refuses a model with
frozen parameters (it hooks every parameter), hence this counter.
"""

from __future__ import annotations

import math
import weakref
from contextlib import ExitStack, contextmanager

import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

DEVICE = torch.device("cuda:0")
BLOCK_BYTES = 512  # the CUDA caching allocator rounds every allocation up to this


class FakeCudaMode(FakeTensorMode):
    """FakeTensorMode that never initialises a device: its own property consults torch.cuda.is_available(), which
    a registered accelerator or a driver would make true."""

    @property
    def avoid_device_init(self) -> bool:
        return True


def _move_to(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    moved: dict[int, torch.nn.Parameter] = {}
    for sub in module.modules():
        for name, param in sub._parameters.items():
            if param is not None and param.device != device:
                if id(param) not in moved:
                    moved[id(param)] = torch.nn.Parameter(param.detach().to(device), requires_grad=param.requires_grad)
                sub._parameters[name] = moved[id(param)]
        for name, buffer in sub._buffers.items():
            if buffer is not None and buffer.device != device:
                sub._buffers[name] = buffer.to(device)
    return module


@contextmanager
def _module_to_moves_tensors():
    original = torch.nn.Module.to

    def to(self, *args, **kwargs):
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is None or dtype is not None:
            return original(self, *args, **kwargs)
        device = torch.device(device)
        return _move_to(self, DEVICE if device.type == "cuda" and device.index is None else device)

    torch.nn.Module.to = to
    try:
        yield
    finally:
        torch.nn.Module.to = original


_registered: list[torch.library.Library] = []


def _register_shape_kernels() -> None:
    """Meta (shape-only) kernels for the fused GRU cell and its backward, once per process."""
    if _registered:
        return

    def gru_cell(input_gates, hidden_gates, hx, input_bias=None, hidden_bias=None):
        return torch.empty_like(hx), hx.new_empty((hx.shape[0], hx.shape[1] * 5))  # hy, workspace

    def gru_cell_backward(grad_hy, workspace, has_bias):
        rows, hidden = grad_hy.shape
        bias = (lambda: grad_hy.new_empty((3 * hidden,))) if has_bias else (lambda: None)
        return (grad_hy.new_empty((rows, 3 * hidden)), grad_hy.new_empty((rows, 3 * hidden)),
                torch.empty_like(grad_hy), bias(), bias())

    library = torch.library.Library("aten", "IMPL")
    library.impl("_thnn_fused_gru_cell", gru_cell, "Meta")
    library.impl("_thnn_fused_gru_cell_backward", gru_cell_backward, "Meta")
    _registered.append(library)


class DeviceAnswers(TorchDispatchMode):
    """What a fake tensor cannot answer, answered as on a GPU: scaled_dot_product_attention's kernel query as an
    sm80+ card would (see the module's docstring), and a value read on the host (`.item()`, `float(t)`, `if t:`) as
    0. A GPU run reads the true value; here no value exists, and 0 lets the step go on (weight initialisers such as
    trunc_normal_ read one to end their loop). `host_reads` counts reads from CUDA tensors: each is a sync on a
    GPU."""

    FLASH, EFFICIENT, MATH = 1, 2, 0  # torch.nn.attention.SDPBackend values

    def __init__(self):
        super().__init__()
        self.host_reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.host_reads += args[0].device.type == "cuda"
            try:
                return func(*args, **kwargs)
            except DataDependentOutputException:
                dtype = args[0].dtype
                return 0.0 if dtype.is_floating_point else False if dtype == torch.bool else 0
        if func is torch.ops.aten._fused_sdp_choice.default and args[0].device.type == "cuda":
            query = args[0]
            mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
            if query.shape[-1] % 8:
                return self.MATH
            if mask is None and query.dtype in (torch.float16, torch.bfloat16) and query.shape[-1] <= 256:
                return self.FLASH
            return self.EFFICIENT
        return func(*args, **kwargs)


class LiveMemory(TorchDispatchMode):
    """Bytes of the live storages on `device_type` it has seen (op outputs, and whatever `track` is given), and
    their peak. Other devices' tensors (the batch on the host) are not counted."""

    def __init__(self, device_type: str = "cuda"):
        super().__init__()
        self.device_type = device_type
        self._bytes: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}
        self.live = self.peak = 0

    def _free(self, key: int) -> None:
        self.live -= self._bytes.pop(key, 0)
        self._refs.pop(key, None)

    def track(self, tensor: torch.Tensor) -> None:
        if tensor.device.type != self.device_type:
            return
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self._bytes:
            return
        size = storage.nbytes()
        if tensor.device.type == "cuda":
            size = math.ceil(size / BLOCK_BYTES) * BLOCK_BYTES
        self._bytes[key] = size
        self._refs[key] = weakref.ref(storage, lambda _, key=key: self._free(key))
        self.live += size
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self.track, out)
        return out


@contextmanager
def cuda_autocast(dtype: torch.dtype | None):
    """torch.autocast("cuda", dtype) on fake CUDA tensors (None: no autocast)."""
    if dtype is None:
        yield
        return
    enabled, previous = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", dtype)
    try:
        yield
    finally:
        torch.set_autocast_enabled("cuda", enabled)
        torch.set_autocast_dtype("cuda", previous)
        torch.clear_autocast_cache()


@contextmanager
def simulated_cuda():
    """Build and run on a fake `cuda:0` inside this block (see the module's docstring); yields the
    `DeviceAnswers`, whose `host_reads` counts syncs."""
    _register_shape_kernels()
    with ExitStack() as stack:
        stack.enter_context(FakeCudaMode())
        stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        stack.enter_context(_module_to_moves_tensors())
        yield stack.enter_context(DeviceAnswers())
