"""Task detection and target encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data.corrections import FLOAT32_MAX, parse_numbers
from orchestrator.errors import ConfigError, DataError

TASKS = ("classification", "regression")
MAX_CLASSES = 20


def _label_string(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def label_strings(values: Any) -> np.ndarray:
    """Class labels as strings; integral numbers print without a decimal part (1.0 -> '1')."""
    if isinstance(values, (np.ndarray, pd.Series, pd.Index)) and isinstance(values.dtype, np.dtype):
        flat = np.asarray(values).ravel()
        if flat.dtype.kind in "biuf":
            # a numeric array has few distinct labels: format each once. np.unique merges only
            # values that print alike (NaNs; 0.0 and -0.0, which both print '0')
            distinct, inverse = np.unique(flat, return_inverse=True)
            names = [_label_string(v) for v in distinct.astype(object)]
            return np.asarray(names, dtype=object)[inverse.ravel()]
    cells = np.asarray(values, dtype=object).ravel()
    if pd.api.types.infer_dtype(cells, skipna=False) == "string":
        codes, distinct = pd.factorize(cells)  # text labels: each distinct one once
        return np.asarray([str(v) for v in distinct], dtype=object)[codes]
    return np.asarray([_label_string(v) for v in cells], dtype=object)


def _present(y: Any) -> pd.Series:
    """The non-missing values of ``y`` as a Series with an inferred dtype."""
    s = pd.Series(y).reset_index(drop=True)
    return s[s.notna()].infer_objects()


def numeric_target(y: Any, name: str = "target") -> np.ndarray:
    """``y`` as float64, or DataError naming a value that is not a number."""
    s = pd.Series(y).reset_index(drop=True)
    if pd.api.types.is_bool_dtype(s):
        return np.array(s, dtype=np.float64)
    converted = parse_numbers(s)  # tolerates " 3.5 " and "1,234"
    bad = s.notna() & converted.isna()
    if bad.any():
        example = s[bad].iloc[0]
        raise DataError(
            f"regression needs a numeric target, column '{name}' has values like {str(example)!r}"
        )
    return np.array(converted, dtype=np.float64)


def detect_task(y: Any, forced: str = "auto", name: str | None = None) -> str:
    """``classification`` for text, booleans or a few integer values; else ``regression``."""
    name = name or str(getattr(y, "name", None) or "target")
    if forced not in ("auto", *TASKS):
        raise ConfigError(
            f"data.task must be one of auto, classification, regression, got {forced!r}"
        )
    if forced == "regression":
        numeric_target(y, name)
        return "regression"
    if forced == "classification":
        return "classification"
    present = _present(y)
    if len(present) == 0:
        raise DataError(f"column '{name}' has no values: cannot tell the task")
    if pd.api.types.is_bool_dtype(present) or not pd.api.types.is_numeric_dtype(present):
        return "classification"
    values = present.to_numpy(dtype=np.float64)
    distinct = np.unique(values)
    integral = bool(np.all(np.isfinite(distinct)) and np.all(distinct == np.round(distinct)))
    if integral and len(distinct) <= MAX_CLASSES and len(distinct) < len(values) / 2:
        return "classification"
    return "regression"


def validate_target(y: Any, task: str, source: str = "") -> None:
    """DataError when the target cannot train ``task`` (one class, or a regression target that
    is not numbers, or is infinite or beyond float32's range)."""
    where = f" (in {source})" if source else ""
    if task == "regression":
        values = numeric_target(y)
        with np.errstate(invalid="ignore"):
            bad = np.abs(values) > FLOAT32_MAX
        if bad.any():
            raise DataError(
                f"the regression target has {int(bad.sum())} infinite or too large value(s), "
                f"like {float(values[bad][0])!r}{where}; targets must be finite and within ±3.4e38"
            )
        return
    classes = np.unique(pd.unique(label_strings(_present(y).to_numpy())))
    if len(classes) < 2:
        only = f" '{classes[0]}'" if len(classes) else ""
        raise DataError(
            f"target has a single class{only}; classification needs at least 2 classes{where}"
        )


def _sorted_labels(labels: np.ndarray) -> list[str]:
    unique = sorted(set(labels.tolist()))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


class TargetEncoder:
    """Class labels to int64 indices, or a standardised float32 regression target."""

    def __init__(self, task: str = "classification") -> None:
        self.task = task

    def fit(self, y: Any) -> TargetEncoder:
        if self.task not in TASKS:
            raise ConfigError(f"task must be classification or regression, got {self.task!r}")
        if self.task == "classification":
            self.classes_ = np.asarray(_sorted_labels(label_strings(_present(y).to_numpy())))
            self.n_classes_ = len(self.classes_)
            self.index_ = {c: i for i, c in enumerate(self.classes_)}
        else:
            values = numeric_target(y)
            values = values[~np.isnan(values)]
            self.mean_ = float(values.mean()) if len(values) else 0.0
            std = float(values.std()) if len(values) else 0.0
            self.scale_ = std if std > 0 else 1.0
        return self

    def transform(self, y: Any) -> np.ndarray:
        if self.task == "classification":
            labels = label_strings(y)
            codes, distinct = pd.factorize(labels)
            unknown = sorted(set(distinct.tolist()) - set(self.index_))
            if unknown:
                shown = ", ".join(repr(u) for u in unknown[:5])
                raise DataError(
                    f"unknown class label(s) {shown}; known classes: {', '.join(self.classes_)}"
                )
            index = np.asarray([self.index_[v] for v in distinct], dtype=np.int64)
            return index[codes]
        return ((numeric_target(y) - self.mean_) / self.scale_).astype(np.float32)

    def inverse_transform(self, encoded: Any) -> np.ndarray:
        """Class names (strings) from indices, or regression values in the target's units."""
        encoded = np.asarray(encoded)
        if self.task == "classification":
            return self.classes_[encoded.astype(np.int64)]
        return encoded.astype(np.float64) * self.scale_ + self.mean_
