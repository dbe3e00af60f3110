"""Numeric imputation with nan-aware numpy (scikit-learn estimator contract).

``SimpleImputer(strategy="median")`` computes its medians through numpy masked arrays, which sort
every column: 1.3 s for 133,000 × 50 floats, against 0.13 s for ``np.nanmedian`` with the same
result (``python -m benchmarks.cleaning_speed`` measures both). Preprocessing is fitted once per
fold, so that difference is paid by every fold of a large table.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

STRATEGIES = ("mean", "median", "constant")


class NumericImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill NaNs of numeric columns with each column's training mean or median, or a constant.

    Matches ``SimpleImputer(strategy=..., keep_empty_features=True)``: a column with no value in
    the training part gets 0 (or ``fill_value`` under ``constant``) and is kept.
    """

    def __init__(self, strategy: str = "median", fill_value: float = 0.0) -> None:
        self.strategy = strategy
        self.fill_value = fill_value

    def fit(self, X: Any, y: Any = None) -> NumericImputer:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        if self.strategy == "constant":
            stats = np.full(X.shape[1], float(self.fill_value))
        else:
            with warnings.catch_warnings():  # an all-NaN column: "Mean of empty slice"
                warnings.simplefilter("ignore", RuntimeWarning)
                reduce = np.nanmedian if self.strategy == "median" else np.nanmean
                stats = reduce(X, axis=0) if X.shape[0] else np.full(X.shape[1], np.nan)
            stats = np.where(np.isnan(stats), 0.0, stats)
        self.statistics_ = stats
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "statistics_")
        X = validate_data(
            self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False, copy=True
        )
        rows, cols = np.nonzero(np.isnan(X))
        if rows.size:
            X[rows, cols] = self.statistics_[cols]
        return X
