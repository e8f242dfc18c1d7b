"""What the service needs of an inference engine, whichever runs the model: ONNX Runtime (OnnxEngine, a bundle),
PyTorch (TorchEngine, a training checkpoint, research) or a Triton server with a local fallback (FailoverEngine,
service/inference/failover.py). Routes, the live runtime and clip analysis depend on this protocol only.

An engine that can run windows in more than one place (a `RoutingEngine`) also says, per call, where they ran and
on which model; `predict_routed` asks any engine that, so an emotion event names its `engine`."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import numpy as np

from service.state import EngineStatus

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


LOCAL = "local"  # an event's `engine` when this process classified its window


class Routed(NamedTuple):
    probs: np.ndarray  # [B, labels], in the order of the engine's spec.labels
    valence_arousal: np.ndarray | None  # [B, 2], the model's own where its bundle has them
    engine: str  # where the windows ran: LOCAL, or the remote model's URL
    model: str  # the name of the model that ran them


@runtime_checkable
class RoutingEngine(Engine, Protocol):
    def predict_routed(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None) -> Routed:
        """predict_windows (with the model's own valence/arousal) and where the windows ran (all of one call run in
        one place)."""
        ...

    def status(self) -> EngineStatus: ...

    def close(self) -> None:
        """Stop background work (health checks)."""
        ...


def predict_routed(engine: Engine, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None) -> Routed:
    """Probabilities (and the model's own valence/arousal) for (source, Window) pairs, with where they were computed:
    a local engine runs them here."""
    if isinstance(engine, RoutingEngine):
        return engine.predict_routed(items, cache)
    return Routed(*predict_with_valence_arousal(engine, items, cache), LOCAL, engine.spec.name)


def engine_status(engine: Engine) -> EngineStatus:
    """Where windows run now (GET /v1/state's `engine`, /metrics)."""
    if isinstance(engine, RoutingEngine):
        return engine.status()
    return EngineStatus(where=LOCAL, status="local", model=engine.spec.name)


def close_engine(engine: Engine) -> None:
    """Stop what an engine runs in the background (a remote engine's health checks); nothing for local ones."""
    if isinstance(engine, RoutingEngine):
        engine.close()
