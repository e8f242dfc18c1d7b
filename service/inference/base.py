"""What the service needs of an inference engine, whichever runs the model: ONNX Runtime (OnnxEngine, a bundle) or
PyTorch (TorchEngine, a training checkpoint, research). Routes, the live runtime and clip analysis depend on this
protocol only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from service.bundle import BundleSpec, ModelBundle
    from service.inference.engine import FrameFeatureCache
    from service.windows import Window


@runtime_checkable
class Engine(Protocol):
    spec: BundleSpec  # labels, clip length, image size, normalisation: the model's input contract
    bundle: ModelBundle  # where the model came from (GET /v1/models)
    providers: list[str]  # what runs it, best first (ONNX Runtime providers, or "PyTorch (device)")

    @property
    def labels(self) -> list[str]: ...

    def predict(self, faces: np.ndarray, scene: np.ndarray | None = None) -> np.ndarray:
        """faces [B, T, H, W, C] uint8 (scene alike for scene-aware models) -> probabilities [B, labels]."""
        ...

    def predict_windows(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None) -> np.ndarray:
        """Probabilities [B, labels] for (source, Window) pairs; a cache lets engines that can reuse encoded frames."""
        ...


def predict_with_valence_arousal(engine: Engine, items: list[tuple[str, Window]], cache: FrameFeatureCache | None
                                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities [B, labels], the model's own valence/arousal [B, 2] or None). An engine that reads a bundle's
    valence/arousal output (bundle.json `valence_arousal`) has `predict_windows_va`; any other gives None."""
    with_va = getattr(engine, "predict_windows_va", None)
    if with_va is None:
        return engine.predict_windows(items, cache), None
    return with_va(items, cache)
