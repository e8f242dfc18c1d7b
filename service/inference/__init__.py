"""Running a model bundle on batches of windows."""

from service.inference.engine import OnnxEngine, choose_providers, normalise, softmax

__all__ = ["OnnxEngine", "choose_providers", "normalise", "softmax"]
