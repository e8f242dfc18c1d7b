"""face-api.js's face nets in PyTorch, as its TypeScript builds them (npm `@vladmandic/face-api` 1.7.15, MIT):
`FaceFeatureExtractor` (src/faceFeatureExtractor: four dense blocks of TensorFlow 'same' convolutions, 7x7 average
pool -> 256 features) under a fully connected head (src/faceProcessor: `FaceProcessor.runNet`). The expression net
(src/faceExpressionNet) is that with 7 outputs; face_landmark_68_model is the same extractor with 136.

Weights are the TensorFlow.js arrays by their manifest names (`dense0/conv0/filters`, ..., `fc/weights`; read with
export/tfjs_weights.py), laid out as TensorFlow keeps them (filters [kh, kw, in, out], depthwise [kh, kw, in, 1],
fc [in, out]); `load_face_processor` copies every one and refuses a set with a missing, extra or misshapen weight.

Input: [N, 3, 112, 112] RGB, (pixel - mean RGB) / 255 with face-api's mean RGB (122.782, 117.001, 104.298), which a
bundle states as mean = that / 255 and std 1. TensorFlow's 'same' padding puts the odd pixel of a strided 3x3 after
the image (112 -> 56: 0 before, 1 after), unlike PyTorch's symmetric padding, so each convolution pads explicitly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.mini_xception import FrameAveragingClassifier, tf_same_padding

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceFeatureExtractor.forwardInput, on 0..255 pixels, then / 255
WIDTHS = (32, 64, 128, 256)
# src/faceExpressionNet/FaceExpressions.ts FACE_EXPRESSION_LABELS, the output order
FACEAPI_EXPRESSION_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# ... as the service's labels (models/text.py vocabulary)
EXPRESSION_LABELS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")


class WeightsMismatch(ValueError):
    pass


class TFSameConv2d(nn.Module):
    """A 3x3 convolution (plain, or depthwise then pointwise: tf.separableConv2d) with TensorFlow 'same' padding for
    a known input side, and a bias after it."""

    def __init__(self, cin: int, cout: int, stride: int, size: int, separable: bool):
        super().__init__()
        before, after = tf_same_padding(size, 3, stride)
        self.pad = (before, after, before, after)
        self.separable = separable
        if separable:
            self.depthwise = nn.Conv2d(cin, cin, 3, stride, groups=cin, bias=False)
            self.pointwise = nn.Conv2d(cin, cout, 1)
        else:
            self.conv = nn.Conv2d(cin, cout, 3, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad)
        return self.pointwise(self.depthwise(x)) if self.separable else self.conv(x)


class DenseBlock4(nn.Module):
    """src/faceFeatureExtractor/denseBlock.ts denseBlock4: conv0 (strided), then three separable convs, each fed the
    rectified sum of all outputs before it; the sums in the TypeScript's order (floating point is not associative)."""

    def __init__(self, cin: int, cout: int, size: int, first: bool = False, scale_down: bool = True):
        super().__init__()
        stride = 2 if scale_down else 1
        self.conv0 = TFSameConv2d(cin, cout, stride, size, separable=not first)
        out = math.ceil(size / stride)
        self.conv1, self.conv2, self.conv3 = (TFSameConv2d(cout, cout, 1, out, separable=True) for _ in range(3))
        self.out_size = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + (out2 + out3)))
        return F.relu(out1 + (out2 + (out3 + out4)))


class FaceFeatureExtractor(nn.Module):
    """[N, 3, 112, 112] normalised -> [N, 256]: dense0..dense3, then a 7x7/2 'valid' average pool."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, size: int = INPUT_SIZE):
        super().__init__()
        blocks, cin = [], 3
        for i, width in enumerate(widths):
            blocks.append(DenseBlock4(cin, width, size, first=i == 0))
            cin, size = width, blocks[-1].out_size
        self.blocks = nn.ModuleList(blocks)
        self.pool_size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        # tf.avgPool(out, [7, 7], [2, 2], 'valid') on 7x7 maps: one value per channel
        return F.avg_pool2d(x, 7, 2).flatten(1)


class FaceProcessor(nn.Module):
    """src/faceProcessor/FaceProcessor.ts: the feature extractor and one fully connected layer (pre-softmax)."""

    def __init__(self, outputs: int, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.features = FaceFeatureExtractor(widths)
        self.fc = nn.Linear(widths[-1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _expected(model: FaceProcessor) -> dict[str, tuple[tuple[int, ...], list[tuple[torch.Tensor, tuple[int, ...]]]]]:
    """manifest name -> (TensorFlow shape, [(our tensor, transpose from TensorFlow's layout)])."""
    layout: dict = {}
    for b, block in enumerate(model.features.blocks):
        for c, conv in enumerate((block.conv0, block.conv1, block.conv2, block.conv3)):
            prefix = f"dense{b}/conv{c}/"
            if conv.separable:
                dw, pw = conv.depthwise.weight, conv.pointwise.weight
                layout[prefix + "depthwise_filter"] = ((3, 3, dw.shape[0], 1), [(dw, (2, 3, 0, 1))])
                layout[prefix + "pointwise_filter"] = ((1, 1, pw.shape[1], pw.shape[0]), [(pw, (3, 2, 0, 1))])
                layout[prefix + "bias"] = ((pw.shape[0],), [(conv.pointwise.bias, (0,))])
            else:
                w = conv.conv.weight
                layout[prefix + "filters"] = ((3, 3, w.shape[1], w.shape[0]), [(w, (3, 2, 0, 1))])
                layout[prefix + "bias"] = ((w.shape[0],), [(conv.conv.bias, (0,))])
    fc = model.fc
    layout["fc/weights"] = ((fc.in_features, fc.out_features), [(fc.weight, (1, 0))])
    layout["fc/bias"] = ((fc.out_features,), [(fc.bias, (0,))])
    return layout


def load_face_processor(weights: dict[str, np.ndarray], outputs: int, what: str = "face-api net") -> FaceProcessor:
    """A FaceProcessor with `outputs` outputs holding every TensorFlow.js weight of `weights` (by manifest name)."""
    model = FaceProcessor(outputs)
    layout = _expected(model)
    missing, extra = sorted(layout.keys() - weights.keys()), sorted(weights.keys() - layout.keys())
    if missing or extra:
        raise WeightsMismatch(f"{what}: the weights do not fit face-api's FaceFeatureExtractor + fc({outputs}): "
                              + "; ".join(part for part in (missing and f"missing {', '.join(missing[:4])}",
                                                            extra and f"unexpected {', '.join(extra[:4])}") if part))
    with torch.no_grad():
        for name, (shape, targets) in layout.items():
            array = weights[name]
            if tuple(array.shape) != shape:
                raise WeightsMismatch(f"{what}: {name} has shape {tuple(array.shape)}, face-api's net needs {shape}")
            for tensor, order in targets:
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(array.transpose(order), np.float32)))
    return model.eval()


def faceapi_expression_baseline(weights: dict[str, np.ndarray], num_frames: int = 16) -> FrameAveragingClassifier:
    """face-api's expression net as a 16-frame `baseline` window classifier (per-frame logits averaged), labels in
    its output order named as the service names them."""
    return FrameAveragingClassifier(
        load_face_processor(weights, len(EXPRESSION_LABELS), "face_expression_model"), labels=EXPRESSION_LABELS,
        image_size=INPUT_SIZE, channels=3, mean=tuple(m / 255.0 for m in MEAN_RGB), std=(1.0, 1.0, 1.0),
        num_frames=num_frames, name="faceapi-expression", backbone="faceapi-feature-extractor",
    ).eval()
