"""Running a model bundle on batches of windows."""

from service.inference.engine import OnnxEngine, choose_providers, normalise, softmax

__all__ = ["OnnxEngine", "choose_providers", "create_engine", "normalise", "softmax"]


def create_engine(settings) -> OnnxEngine:
    """The engine the settings describe: bundle, providers, threads, TensorRT cache and precision."""
    from service.bundle import ModelBundle

    return OnnxEngine(ModelBundle.load(settings.model), settings.providers, settings.intra_op_threads,
                      trt_cache_dir=str(settings.trt_cache_dir) if settings.trt_cache_dir else None,
                      trt_fp16=settings.trt_fp16)
