"""Running a model bundle on batches of windows."""

from service.config import Settings
from service.inference.base import Engine
from service.inference.engine import FrameFeatureCache, OnnxEngine, choose_providers, normalise, softmax

__all__ = ["Engine", "FrameFeatureCache", "OnnxEngine", "choose_providers", "create_engine", "normalise", "softmax"]


def create_engine(settings: Settings) -> Engine:
    """The engine the settings describe: a bundle through ONNX Runtime (providers, threads, TensorRT cache and
    precision), or with backend=pytorch a training checkpoint run directly by PyTorch (research)."""
    from service.bundle import ModelBundle

    if settings.backend == "pytorch":
        from service.errors import BundleError
        from service.inference.torch_engine import TorchEngine

        if settings.checkpoint is None:
            raise BundleError("backend=pytorch needs a checkpoint (--checkpoint or EMOTION_CHECKPOINT)")
        return TorchEngine(settings.checkpoint, settings.torch_device)

    bundle = ModelBundle.load(settings.model)
    # An engine prebuilt by `python -m export ... --tensorrt` travels in the bundle; else the configured cache.
    cache = bundle.directory / bundle.spec.tensorrt_cache if bundle.spec.tensorrt_cache else settings.trt_cache_dir
    return OnnxEngine(bundle, settings.providers, settings.intra_op_threads,
                      trt_cache_dir=str(cache) if cache else None, trt_fp16=settings.trt_fp16)
