"""face-api.js's landmark and recognition nets in PyTorch, as its TypeScript builds them (npm `@vladmandic/face-api`
1.7.15, MIT), for export/faceapi_faces.py:

- `face_landmark_68_model` (src/faceLandmarkNet/FaceLandmark68Net.ts): the expression net's FaceFeatureExtractor
  (models/faceapi.py) under fc(136): x0, y0, x1, y1, ... of the 68 points, relative to the (square) input.
- `face_recognition_model` (src/faceRecognitionNet/FaceRecognitionNet.ts): dlib's ResNet-34-like metric net: a 7x7/2
  'valid' convolution, a 3x3/2 max pool, 14 residual blocks (32, 64, 128, 256 channels; each convolution followed
  by bias, then a per-channel scale and offset: convLayer.ts + scaleLayer.ts), a global average and fc 256 -> 128
  without bias: the 128-d face descriptor, compared by Euclidean distance.

Both graphs take what face-api's `toBatchTensor` hands its nets: [N, S, S, 3] float RGB pixels 0..255 (S = 112 and
150), and normalise inside as face-api does, (pixel - mean RGB) / 255, so the runtime (service/faces/nets.py) only
crops and resizes.

The down-sampling residual blocks (residualLayer.ts residualDown) convolve with 'valid' padding, stride 2, and add
a 2x2 average pool of their input, zero-padded in channels; where the two differ in size (8 -> 3 against 4, and
4 -> 1 against 2 at 150 px) face-api appends a zero row and column to the convolution's output. Sizes are fixed by
the input side, so that padding is static and exports cleanly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.faceapi import MEAN_RGB, WeightsMismatch, load_face_processor
from service.faces.nets import DESCRIPTOR_SIZE, LANDMARK_POINTS, RECOGNITION_INPUT_SIZE
# (name, channels, down-sampling) of the residual blocks in FaceRecognitionNet.forwardInput's order
RESIDUAL_BLOCKS = (
    ("conv32_1", 32, False), ("conv32_2", 32, False), ("conv32_3", 32, False),
    ("conv64_down", 64, True), ("conv64_1", 64, False), ("conv64_2", 64, False), ("conv64_3", 64, False),
    ("conv128_down", 128, True), ("conv128_1", 128, False), ("conv128_2", 128, False),
    ("conv256_down", 256, True), ("conv256_1", 256, False), ("conv256_2", 256, False),
    ("conv256_down_out", 256, True),
)


class PixelInput(nn.Module):
    """[N, S, S, 3] RGB pixels (0..255, as face-api's batch tensor) -> the wrapped net on (pixel - mean) / 255."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2)
        return self.net((x - self.mean) / 255.0)


class ScaledConv(nn.Module):
    """convLayer.ts: conv (TensorFlow 'same', or 'valid' when strided) + bias, then * scale weights + scale biases,
    then relu where face-api has one."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool):
        super().__init__()
        # 'same' only ever at stride 1 with odd kernels here: symmetric padding is TensorFlow's too
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0 if stride > 1 else kernel // 2)
        self.scale_weights = nn.Parameter(torch.ones(cout))
        self.scale_biases = nn.Parameter(torch.zeros(cout))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x) * self.scale_weights.view(1, -1, 1, 1) + self.scale_biases.view(1, -1, 1, 1)
        return F.relu(out) if self.relu else out


class Residual(nn.Module):
    """residualLayer.ts residual (same size) or residualDown (stride 2 'valid' conv + 2x2 average pool of the
    input, zero-padded to the conv's channels; the conv's output zero-padded at the bottom and right where it came
    out one smaller)."""

    def __init__(self, cin: int, cout: int, size: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ScaledConv(cin, cout, 3, 2 if down else 1, relu=True)
        self.conv2 = ScaledConv(cout, cout, 3, 1, relu=False)
        if down:
            conv_size, pooled_size = (size - 3) // 2 + 1, size // 2
            self.pad_out = pooled_size - conv_size  # face-api appends one row and column at most
            if self.pad_out not in (0, 1):
                raise ValueError(f"residualDown at {size} px: conv gives {conv_size}, pool {pooled_size}")
            self.pad_channels = cout - cin
            self.out_size = pooled_size
        else:
            self.out_size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.down:
            if self.pad_out:
                out = F.pad(out, (0, self.pad_out, 0, self.pad_out))
            shortcut = F.avg_pool2d(x, 2, 2)
            if self.pad_channels:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad_channels))
            return F.relu(shortcut + out)
        return F.relu(out + x)


class FaceRecognitionNet(nn.Module):
    """[N, 3, 150, 150] normalised -> [N, 128] face descriptors."""

    def __init__(self, size: int = RECOGNITION_INPUT_SIZE):
        super().__init__()
        self.conv32_down = ScaledConv(3, 32, 7, 2, relu=True)
        size = (size - 7) // 2 + 1  # 'valid' 7x7/2
        size = (size - 3) // 2 + 1  # 'valid' 3x3/2 max pool
        blocks, cin = {}, 32
        for name, cout, down in RESIDUAL_BLOCKS:
            blocks[name] = Residual(cin, cout, size, down)
            cin, size = cout, blocks[name].out_size
        self.blocks = nn.ModuleDict(blocks)
        self.fc = nn.Linear(256, DESCRIPTOR_SIZE, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(self.conv32_down(x), 3, 2)
        for block in self.blocks.values():
            out = block(out)
        return self.fc(out.mean((2, 3)))


def _recognition_layout(model: FaceRecognitionNet) -> dict[str, tuple[nn.Parameter, tuple[int, ...]]]:
    """manifest name -> (our tensor, transpose from TensorFlow's layout)."""
    layout = {}
    layers = [("conv32_down", model.conv32_down)] + [
        (f"{name}/{part}", getattr(block, part)) for name, block in model.blocks.items() for part in ("conv1", "conv2")]
    for prefix, layer in layers:
        layout[f"{prefix}/conv/filters"] = (layer.conv.weight, (3, 2, 0, 1))  # [kh, kw, in, out] -> [out, in, kh, kw]
        layout[f"{prefix}/conv/bias"] = (layer.conv.bias, (0,))
        layout[f"{prefix}/scale/weights"] = (layer.scale_weights, (0,))
        layout[f"{prefix}/scale/biases"] = (layer.scale_biases, (0,))
    layout["fc"] = (model.fc.weight, (1, 0))  # [256, 128] (matMul) -> [128, 256]
    return layout


def load_recognition_net(weights: dict[str, np.ndarray]) -> FaceRecognitionNet:
    """A FaceRecognitionNet holding every weight of face_recognition_model (by manifest name); a missing, extra or
    misshapen weight is refused by name."""
    model = FaceRecognitionNet()
    layout = _recognition_layout(model)
    missing, extra = sorted(layout.keys() - weights.keys()), sorted(weights.keys() - layout.keys())
    if missing or extra:
        raise WeightsMismatch("face_recognition_model: the weights do not fit face-api's FaceRecognitionNet: "
                              + "; ".join(part for part in (missing and f"missing {', '.join(missing[:4])}",
                                                            extra and f"unexpected {', '.join(extra[:4])}") if part))
    with torch.no_grad():
        for name, (tensor, order) in layout.items():
            needed = tuple(int(tensor.shape[i]) for i in np.argsort(order))  # TensorFlow's shape of our tensor
            if tuple(weights[name].shape) != needed:
                raise WeightsMismatch(f"face_recognition_model: {name} has shape {tuple(weights[name].shape)}, "
                                      f"face-api's net needs {needed}")
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(weights[name].transpose(order), np.float32)))
    return model.eval()


def faceapi_landmark_net(weights: dict[str, np.ndarray]) -> PixelInput:
    """face_landmark_68_model on [N, 112, 112, 3] RGB pixels -> [N, 136] relative x, y pairs."""
    return PixelInput(load_face_processor(weights, 2 * LANDMARK_POINTS, "face_landmark_68_model")).eval()


def faceapi_recognition_net(weights: dict[str, np.ndarray]) -> PixelInput:
    """face_recognition_model on [N, 150, 150, 3] RGB pixels -> [N, 128] descriptors."""
    return PixelInput(load_recognition_net(weights)).eval()
