"""Row-level cleaning before any split: missing targets, duplicates, correctable errors."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from data.corrections import apply_corrections, check_number_range, learn_corrections
from data.dataset import Dataset
from data.tasks import label_strings, numeric_target, validate_target
from orchestrator.config import CleaningConfig
from orchestrator.errors import AutoMLWarning, DataError


@dataclass
class CleaningReport:
    """What cleaning did, one line per action, with row counts before and after."""

    rows_in: int = 0
    rows_out: int = 0
    actions: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "actions": list(self.actions),
            "dropped_columns": list(self.dropped_columns),
        }


def _missing_target(y: np.ndarray) -> np.ndarray:
    s = pd.Series(y)
    missing = s.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(s):
        missing = missing | s.astype(str).str.strip().eq("").to_numpy()
    return missing


def _is_plain_number(s: pd.Series) -> bool:
    """A numpy bool, integer or float column (not an extension dtype such as Int64)."""
    return isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf"


def _row_hashes(X: pd.DataFrame) -> np.ndarray:
    """One uint64 per row; equal rows hash alike.

    Number columns hash their values (equal numbers, and all NaNs, alike); other columns hash
    as objects, where pandas compares each value's text (so 1 and '1' are alike there).
    """
    frame = X.copy(deep=False)
    for i, (_, col) in enumerate(X.items()):
        if not _is_plain_number(col):
            frame.isetitem(i, col.astype(object))
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _duplicated_rows(ds: Dataset) -> np.ndarray:
    """True for each row whose features and target repeat an earlier row."""
    labels = label_strings(ds.y)
    if isinstance(ds.X, pd.DataFrame):
        rows: Any = _row_hashes(ds.X)
    else:
        rows = [
            hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).hexdigest()
            for x in ds.X
        ]
    return pd.DataFrame({"row": rows, "label": labels}).duplicated().to_numpy()


def _fix_target_spelling(ds: Dataset, report: CleaningReport) -> Dataset:
    """Unify ' Yes' / 'yes' in a text target to its most common spelling."""
    s = pd.Series(ds.y)
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return ds
    frame = pd.DataFrame({"target": s})
    log: list[str] = []
    fixed = apply_corrections(frame, learn_corrections(frame), log)["target"]
    if pd.api.types.is_numeric_dtype(fixed):  # a numeric target read as text: keep its values
        return ds
    if log:
        report.actions.append(log[0].replace("column 'target'", "target"))
    return replace(ds, y=fixed.to_numpy(dtype=object))


def _is_constant(s: pd.Series) -> bool:
    """At most one distinct value, NaN counting as a value (``nunique(dropna=False) <= 1``)."""
    if isinstance(s, pd.Series) and _is_plain_number(s) and len(s):
        values = s.to_numpy()
        if values.dtype.kind == "f" and np.isnan(values[0]):
            return bool(np.isnan(values).all())
        return bool((values == values[0]).all())
    return s.nunique(dropna=False) <= 1


def _fix_table(ds: Dataset, cfg: CleaningConfig, report: CleaningReport) -> Dataset:
    X: pd.DataFrame = ds.X
    if cfg.fix_errors:
        log: list[str] = []
        X = apply_corrections(X, learn_corrections(X, fix_errors=True), log)
        report.actions.extend(log)
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    check_number_range(X, numeric, f" of {ds.source}" if ds.source else "")
    if cfg.drop_constant:
        constant = [c for c in X.columns if _is_constant(X[c])]
        if constant and len(constant) < X.shape[1]:
            X = X.drop(columns=constant)
            report.dropped_columns.extend(str(c) for c in constant)
            report.actions.append(
                f"dropped {len(constant)} constant column(s): {', '.join(map(str, constant))}"
            )
    return replace(ds, X=X)


def _drop_rows(ds: Dataset, drop: np.ndarray, why: str, report: CleaningReport) -> Dataset:
    if not drop.any():
        return ds
    report.actions.append(f"dropped {int(drop.sum())} row(s) {why}")
    return ds.subset(np.flatnonzero(~drop))


def _drop_incomplete(ds: Dataset, cfg: CleaningConfig, report: CleaningReport) -> Dataset:
    X: pd.DataFrame = ds.X
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [c for c in X.columns if c not in set(numeric)]
    if cfg.numeric_impute == "drop" and numeric:
        drop = X[numeric].isna().any(axis=1).to_numpy()
        ds = _drop_rows(ds, drop, "with missing numeric values", report)
    if cfg.categorical_impute == "drop" and text:
        drop = ds.X[text].isna().any(axis=1).to_numpy()
        ds = _drop_rows(ds, drop, "with missing categorical values", report)
    return ds


def clean_dataset(ds: Dataset, cfg: CleaningConfig, task: str) -> tuple[Dataset, CleaningReport]:
    """Clean rows and columns of ``ds`` for ``task``; imputation is left to the preprocessor."""
    report = CleaningReport(rows_in=ds.n_samples)
    if ds.modality == "table" and ds.column_types is None:
        ds = replace(ds, column_types={str(c): str(t) for c, t in ds.X.dtypes.items()})
    missing = _missing_target(ds.y)
    if missing.any():
        warnings.warn(
            f"dropped {int(missing.sum())} of {ds.n_samples} rows with a missing target",
            AutoMLWarning,
            stacklevel=2,
        )
        ds = _drop_rows(ds, missing, "with a missing target", report)
    if task == "regression":
        ds = replace(ds, y=numeric_target(ds.y))
    elif cfg.fix_errors:
        ds = _fix_target_spelling(ds, report)
    if ds.modality == "table":
        ds = _fix_table(ds, cfg, report)
    if cfg.drop_duplicates and ds.n_samples:
        ds = _drop_rows(ds, _duplicated_rows(ds), "duplicating an earlier row", report)
    if ds.modality == "table":
        ds = _drop_incomplete(ds, cfg, report)
    if ds.n_samples == 0:
        raise DataError(
            f"no rows left after cleaning {ds.source or 'the data'} ({report.rows_in} rows in; "
            f"{'; '.join(report.actions) or 'nothing usable'})"
        )
    validate_target(ds.y, task, ds.source)
    report.rows_out = ds.n_samples
    return ds, report
