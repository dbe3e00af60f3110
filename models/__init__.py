"""PyTorch model families, the training loop and evaluation metrics.

Knows nothing about Ray, MLflow or ``data/``; see ARCHITECTURE.md. The names below are imported
from their modules when first used, so that ``models.metrics`` (numpy) can be used without
importing torch (the tracking layer scores with it and imports no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FAMILIES": "models.registry",
    "FusedTrainer": "models.fused",
    "TensorData": "models.tensordata",
    "Trainer": "models.engine",
    "build_model": "models.registry",
    "compute_metrics": "models.metrics",
    "confusion_matrix": "models.metrics",
    "error_analysis": "models.metrics",
    "fusion_blocker": "models.fused",
    "output_size": "models.losses",
    "per_class_metrics": "models.metrics",
    "predict": "models.engine",
    "seed_everything": "models.tensordata",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
