"""Running a model bundle on batches of windows."""

from service.inference.engine import FrameFeatureCache, OnnxEngine, choose_providers, normalise, softmax

__all__ = ["FrameFeatureCache", "OnnxEngine", "choose_providers", "create_engine", "normalise", "softmax"]


def create_engine(settings) -> OnnxEngine:
    """The engine the settings describe: bundle, providers, threads, TensorRT cache and precision."""
    from service.bundle import ModelBundle

    bundle = ModelBundle.load(settings.model)
    # An engine prebuilt by `python -m export ... --tensorrt` travels in the bundle; else the configured cache.
    cache = bundle.directory / bundle.spec.tensorrt_cache if bundle.spec.tensorrt_cache else settings.trt_cache_dir
    return OnnxEngine(bundle, settings.providers, settings.intra_op_threads,
                      trt_cache_dir=str(cache) if cache else None, trt_fp16=settings.trt_fp16)
