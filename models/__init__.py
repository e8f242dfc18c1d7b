"""PyTorch DFER models: the five CLIP-based methods of the papers and the embedded baseline.

`create_model`, `list_models` and `register_model` (models/registry.py) load on first use, so `import models` stays
free of torch."""

from __future__ import annotations

__all__ = ["create_model", "list_models", "register_model"]


def __getattr__(name: str):
    if name in __all__:
        from models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
