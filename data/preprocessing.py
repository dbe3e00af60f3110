"""Preprocessors fitted on a training part only, one per modality (scikit-learn contract)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from data.corrections import (
    FLOAT32_MAX,
    apply_corrections,
    check_number_range,
    learn_corrections,
)
from data.imputing import NumericImputer
from orchestrator.config import DataConfig
from orchestrator.errors import ConfigError, DataError

SCALINGS = ("standard", "minmax", "robust", "none")
# one column per category: beyond this a text column (an identifier, free text) makes a table
# too wide to hold, for little or no signal
MAX_ONEHOT_CATEGORIES = 1000


class Preprocessor(BaseEstimator, TransformerMixin):
    """Base of the preprocessors: ``fit(X)`` on training rows, ``transform(X)`` to float32."""

    output_shape_: tuple[int, ...]

    def fit(self, X: Any, y: Any = None) -> Preprocessor:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, X: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ConfigError(f"data.scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")


def _scaler(scaling: str) -> Any:
    _check_scaling(scaling)
    return {
        "standard": StandardScaler,
        "minmax": MinMaxScaler,
        "robust": RobustScaler,
        "none": lambda: "passthrough",
    }[scaling]()


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, dict) or (isinstance(X, list) and X and isinstance(X[0], dict)):
        return pd.DataFrame(X)
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise DataError(f"table rows must be 2-D (rows, columns), got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _check_onehot_width(frame: pd.DataFrame, columns: list) -> None:
    """DataError for a text column with more distinct values than one-hot encoding takes."""
    for col in columns:
        distinct = int(frame[col].nunique())
        if distinct > MAX_ONEHOT_CATEGORIES:
            raise DataError(
                f"column '{col}' has {distinct} distinct values; one-hot encoding takes at most "
                f"{MAX_ONEHOT_CATEGORIES} per column: drop the column (an identifier carries no "
                "signal) or set data.encoding=ordinal"
            )


class TabularPreprocessor(Preprocessor):
    """Corrections, imputation, scaling and encoding of table columns (ColumnTransformer)."""

    def __init__(
        self,
        scaling: str = "standard",
        encoding: str = "onehot",
        numeric_impute: str = "median",
        fill_value: float = 0.0,
        categorical_impute: str = "most_frequent",
        fix_errors: bool = True,
    ) -> None:
        self.scaling = scaling
        self.encoding = encoding
        self.numeric_impute = numeric_impute
        self.fill_value = fill_value
        self.categorical_impute = categorical_impute
        self.fix_errors = fix_errors

    def _numeric_pipeline(self) -> Pipeline:
        # rows with gaps were dropped at cleaning under "drop"; inference rows still need a value
        strategy = {"drop": "median"}.get(self.numeric_impute, self.numeric_impute)
        if not abs(self.fill_value) <= FLOAT32_MAX:  # NaN too
            raise ConfigError(
                "data.cleaning.fill_value must be a finite number within ±3.4e38, got "
                f"{self.fill_value!r}"
            )
        imputer = NumericImputer(strategy=strategy, fill_value=self.fill_value)
        return Pipeline([("impute", imputer), ("scale", _scaler(self.scaling))])

    def _categorical_pipeline(self) -> Pipeline:
        if self.categorical_impute == "missing":
            imputer = SimpleImputer(
                strategy="constant", fill_value="missing", keep_empty_features=True
            )
        else:
            imputer = SimpleImputer(strategy="most_frequent", keep_empty_features=True)
        if self.encoding == "onehot":
            encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        elif self.encoding == "ordinal":
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        else:
            raise ConfigError(f"data.encoding must be onehot or ordinal, got {self.encoding!r}")
        return Pipeline([("impute", imputer), ("encode", encoder)])

    def fit(self, X: Any, y: Any = None) -> TabularPreprocessor:
        frame = _as_frame(X)
        if frame.shape[1] == 0:
            raise DataError("the table has no feature columns left to learn from")
        self.columns_ = list(frame.columns)
        # columns with gaps in training: a request may leave them out, they are imputed
        self.optional_columns_ = [c for c in self.columns_ if frame[c].isna().any()]
        self.corrections_ = learn_corrections(frame, fix_errors=self.fix_errors)
        frame = apply_corrections(frame, self.corrections_)
        self.numeric_columns_ = list(self.corrections_.numeric_columns)
        check_number_range(frame, self.numeric_columns_)
        numeric = set(self.numeric_columns_)
        self.categorical_columns_ = [c for c in self.columns_ if c not in numeric]
        if self.encoding == "onehot":
            _check_onehot_width(frame, self.categorical_columns_)
        parts = []
        if self.numeric_columns_:
            parts.append(("num", self._numeric_pipeline(), self.numeric_columns_))
        if self.categorical_columns_:
            parts.append(("cat", self._categorical_pipeline(), self.categorical_columns_))
        self.column_transformer_ = ColumnTransformer(
            parts, remainder="drop", sparse_threshold=0, verbose_feature_names_out=False
        )
        out = self.column_transformer_.fit_transform(frame)
        try:
            names = self.column_transformer_.get_feature_names_out()
        except ValueError:  # a one-hot name collides with a column name
            self.column_transformer_.verbose_feature_names_out = True
            names = self.column_transformer_.get_feature_names_out()
        self.feature_names_out_ = [str(n) for n in names]
        self.output_shape_ = (int(out.shape[1]),)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Raw rows (as the user supplied them) to float32 ``(N, F')``; extra columns ignored."""
        frame = _as_frame(X)
        optional = set(getattr(self, "optional_columns_", ()))
        absent = [c for c in self.columns_ if c not in frame.columns and c in optional]
        if absent:  # columns that had gaps in training may be left out: all gaps then
            frame = frame.copy()
            for column in absent:
                frame[column] = np.nan
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise DataError(
                f"missing column(s): {', '.join(map(str, missing))}; the model expects "
                f"{', '.join(map(str, self.columns_))}"
            )
        if len(frame) == 0:  # an empty part (a tiny fold's early-stopping rows): no rows out
            return np.zeros((0, *self.output_shape_), dtype=np.float32)
        frame = apply_corrections(frame[self.columns_], self.corrections_)
        check_number_range(frame, self.numeric_columns_)
        out = np.asarray(self.column_transformer_.transform(frame), dtype=np.float64)
        # a value far outside the training range, scaled by a tiny spread, passes float32's
        return np.clip(out, -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)


def _channel_stats(values: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-last-axis offset and scale of ``values`` (NaN ignored); zero scales become 1."""
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
    if scaling == "standard":
        offset, scale = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
    elif scaling == "minmax":
        offset = np.nanmin(flat, axis=0)
        scale = np.nanmax(flat, axis=0) - offset
    elif scaling == "robust":
        q1, median, q3 = np.nanpercentile(flat, [25, 50, 75], axis=0)
        offset, scale = median, q3 - q1
    else:
        offset, scale = np.zeros(flat.shape[1]), np.ones(flat.shape[1])
    offset = np.nan_to_num(offset)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return offset.astype(np.float32), scale.astype(np.float32)


class ImagePreprocessor(Preprocessor):
    """Per-channel scaling of ``(N, H, W, C)`` images, output channels-first ``(N, C, H, W)``."""

    def __init__(self, scaling: str = "standard") -> None:
        self.scaling = scaling

    @staticmethod
    def _images(X: Any) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4:
            raise DataError(f"images must be (N, H, W) or (N, H, W, C), got shape {arr.shape}")
        return arr

    def fit(self, X: Any, y: Any = None) -> ImagePreprocessor:
        _check_scaling(self.scaling)
        images = self._images(X)
        self.input_shape_ = tuple(int(d) for d in images.shape[1:])
        self.offset_, self.scale_ = _channel_stats(images, self.scaling)
        h, w, c = self.input_shape_
        self.output_shape_ = (c, h, w)
        return self

    def transform(self, X: Any) -> np.ndarray:
        images = self._images(X)
        if images.shape[1:] != self.input_shape_:
            raise DataError(
                f"images are {'x'.join(map(str, images.shape[1:]))} (H x W x C) but the model "
                f"was fitted on {'x'.join(map(str, self.input_shape_))}"
            )
        scaled = np.nan_to_num((images - self.offset_) / self.scale_)
        return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2), dtype=np.float32)


def sequence_lengths(X: Any) -> np.ndarray:
    """Length of each sequence from its NaN padding: 1 + the last step with a value (min 1)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    present = ~np.isnan(arr).all(axis=2)  # (N, T)
    last = arr.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), last + 1, 1).astype(np.int64)


def znormalise_series(seqs: np.ndarray) -> np.ndarray:
    """Each series and feature to mean 0, standard deviation 1 over its own valid steps.

    ``seqs`` is ``(N, T, F)`` with NaN after each length; NaN stays NaN. A flat series becomes 0.
    The UCR archive's convention: a series' level and amplitude carry no class information.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(seqs, axis=1, keepdims=True)  # (N, 1, F)
        std = np.nanstd(seqs, axis=1, keepdims=True)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    return ((seqs - np.nan_to_num(mean)) / std).astype(np.float32)


class SequencePreprocessor(Preprocessor):
    """Per-feature scaling of ``(N, T, F)`` sequences ignoring padding; padding becomes 0.

    Sequences of any length are accepted at transform time: ``T`` is the batch's own. With
    ``series_norm`` (``auto``: when there is one feature) each series is first z-normalised over
    its own valid steps.
    """

    def __init__(self, scaling: str = "standard", series_norm: str = "auto") -> None:
        self.scaling = scaling
        self.series_norm = series_norm

    @staticmethod
    def _sequences(X: Any) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3:
            raise DataError(f"sequences must be (N, T) or (N, T, F), got shape {arr.shape}")
        return arr

    def _normalised(self, seqs: np.ndarray) -> np.ndarray:
        # models pickled before series_norm existed have no series_norm_
        return znormalise_series(seqs) if getattr(self, "series_norm_", False) else seqs

    def fit(self, X: Any, y: Any = None) -> SequencePreprocessor:
        _check_scaling(self.scaling)
        if self.series_norm not in ("auto", "on", "off"):
            raise ConfigError(
                f"data.series_norm must be one of auto, on, off, got {self.series_norm!r}"
            )
        seqs = self._sequences(X)
        self.n_steps_, self.n_features_ = int(seqs.shape[1]), int(seqs.shape[2])
        self.series_norm_ = self.series_norm == "on" or (
            self.series_norm == "auto" and self.n_features_ == 1
        )
        self.offset_, self.scale_ = _channel_stats(self._normalised(seqs), self.scaling)
        self.output_shape_ = (self.n_steps_, self.n_features_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Raw ``(N, T, F)`` (NaN after each length; any ``T``) to scaled float32, padding 0."""
        seqs = self._sequences(X)
        f = seqs.shape[2]
        if f != self.n_features_:
            raise DataError(
                f"sequences have {f} features per step, the model expects {self.n_features_}"
            )
        scaled = np.nan_to_num((self._normalised(seqs) - self.offset_) / self.scale_)
        return np.ascontiguousarray(scaled, dtype=np.float32)


def fit_preprocessor(X_train: Any, modality: str, data_cfg: DataConfig) -> Preprocessor:
    """Fit the preprocessor of ``modality`` on the training rows ``X_train`` only."""
    if modality == "table":
        c = data_cfg.cleaning
        pre: Preprocessor = TabularPreprocessor(
            scaling=data_cfg.scaling,
            encoding=data_cfg.encoding,
            numeric_impute=c.numeric_impute,
            fill_value=c.fill_value,
            categorical_impute=c.categorical_impute,
            fix_errors=c.fix_errors,
        )
    elif modality == "image":
        pre = ImagePreprocessor(scaling=data_cfg.scaling)
    elif modality == "sequence":
        pre = SequencePreprocessor(scaling=data_cfg.scaling, series_norm=data_cfg.series_norm)
    else:
        raise ConfigError(f"modality must be table, image or sequence, got {modality!r}")
    return pre.fit(X_train)
