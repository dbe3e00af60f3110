"""Loading, cleaning, splitting and preprocessing of datasets (knows nothing about models).

The names below are imported from their modules when first used, so importing one light module
(``data.dataset``, ``data.tasks``) does not import scikit-learn with ``data.preprocessing``: a
Ray trial worker whose folds were fitted in the driver never needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "augment_images": "data.augment",
    "augment_series": "data.augment",
    "CleaningReport": "data.cleaning",
    "clean_dataset": "data.cleaning",
    "ColumnCorrections": "data.corrections",
    "apply_corrections": "data.corrections",
    "learn_corrections": "data.corrections",
    "Dataset": "data.dataset",
    "resolve_modality": "data.modality",
    "ImagePreprocessor": "data.preprocessing",
    "Preprocessor": "data.preprocessing",
    "SequencePreprocessor": "data.preprocessing",
    "TabularPreprocessor": "data.preprocessing",
    "fit_preprocessor": "data.preprocessing",
    "sequence_lengths": "data.preprocessing",
    "list_builtin": "data.sources",
    "load_dataset": "data.sources",
    "holdout_split": "data.splitting",
    "inner_split": "data.splitting",
    "make_folds": "data.splitting",
    "TargetEncoder": "data.tasks",
    "detect_task": "data.tasks",
    "validate_target": "data.tasks",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
