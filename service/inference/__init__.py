"""Running a model bundle on batches of windows: here (ONNX Runtime, or PyTorch for research), or on a Triton server
with a local fallback (`engine` setting)."""

from service.config import Settings
from service.inference.base import LOCAL, Engine, Routed, engine_status, predict_routed
from service.inference.engine import FrameFeatureCache, OnnxEngine, choose_providers, normalise, softmax

__all__ = ["LOCAL", "Engine", "FrameFeatureCache", "OnnxEngine", "Routed", "choose_providers", "create_engine",
           "engine_status", "normalise", "predict_routed", "softmax"]


def create_local_engine(settings: Settings) -> Engine:
    """The engine the settings describe here: a bundle through ONNX Runtime (providers, threads, TensorRT cache and
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


def create_engine(settings: Settings) -> Engine:
    """engine=local: create_local_engine. A triton:// engine: the remote model, its contract read and checked now
    (RemoteContractError: a missing model, not a Triton, a contract that differs: the start ends), with the local
    fallback (engine_fallback, else `model`) beside it; a server that does not answer now is asked again later."""
    if settings.engine == "local":
        return create_local_engine(settings)
    from service.errors import ServiceError
    from service.inference.failover import FailoverEngine
    from service.inference.triton_engine import RemoteUnavailable, TritonEngine, parse_engine_url

    try:
        address = parse_engine_url(settings.engine)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    if settings.engine_tls_root_cert is not None and not settings.engine_tls_root_cert.is_file():
        raise ServiceError(f"engine_tls_root_cert {settings.engine_tls_root_cert} is not a file")
    remote = TritonEngine(address, settings.engine_deadline_s, settings.engine_headers, settings.engine_tls_root_cert,
                          settings.engine_model_version, settings.engine_health_max_s)
    start_error = None
    try:
        remote.connect(timeout=max(settings.engine_deadline_s, 1.0))  # per call: a slow first answer is not "away"
    except RemoteUnavailable as exc:
        start_error = str(exc)
    except ServiceError:
        remote.close()
        raise
    fallback = settings.engine_fallback or settings.model
    local = create_local_engine(settings.model_copy(update={"model": fallback}))
    return FailoverEngine(remote, local, settings.engine_health_backoff_s, settings.engine_health_max_s, start_error)
