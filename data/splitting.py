"""Seeded, deterministic splits: the held-out test part, k folds, and early-stopping sets."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedKFold,
    TimeSeriesSplit,
    train_test_split,
)

from data.tasks import label_strings
from orchestrator.config import SplitConfig
from orchestrator.errors import AutoMLWarning, ConfigError, DataError

Split = tuple[np.ndarray, np.ndarray]


def _class_counts(y: Any) -> dict[str, int]:
    labels, counts = np.unique(label_strings(y), return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist(), strict=True))


def _can_stratify(y: Any, test_fraction: float) -> bool:
    counts = _class_counts(y)
    n = sum(counts.values())
    n_test = int(np.ceil(test_fraction * n))
    k = len(counts)
    return min(counts.values()) >= 2 and k <= n_test <= n - k


def _shuffle_split(
    y: Any, task: str, fraction: float, seed: int, groups: Any = None, what: str = "test"
) -> Split:
    n = len(y)
    if n < 2:
        raise DataError(
            f"cannot split {n} sample(s) into two parts: at least 2 are needed (more for k "
            "folds); gather more data"
        )
    idx = np.arange(n)
    if groups is not None:
        groups = np.asarray(groups)
        if len(np.unique(groups)) < 2:
            raise DataError(f"cannot hold out a {what} part: all samples are in a single group")
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        a, b = next(splitter.split(idx, groups=groups))
        return np.sort(a), np.sort(b)
    stratify = None
    if task == "classification":
        if _can_stratify(y, fraction):
            stratify = label_strings(y)
        else:
            warnings.warn(
                f"the {what} split is not stratified: a class has fewer than 2 samples or there "
                f"are more classes than {what} samples",
                AutoMLWarning,
                stacklevel=3,
            )
    a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(a), np.sort(b)


def holdout_split(
    y: Any, task: str, test_size: float, seed: int, groups: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(trainval_idx, test_idx)``: stratified for classification, by group when given."""
    return _shuffle_split(y, task, test_size, seed, groups, "test")


def _strategy(task: str, split_cfg: SplitConfig, groups: Any) -> str:
    strategy = split_cfg.strategy
    if strategy == "auto":
        if groups is not None:
            return "group"
        return "stratified" if task == "classification" else "kfold"
    if strategy == "group" and groups is None:
        raise ConfigError("split.strategy='group' needs groups; set data.group_column")
    if strategy == "stratified" and task != "classification":
        raise ConfigError("split.strategy='stratified' needs a classification task; use 'kfold'")
    return strategy


def make_folds(
    y: Any, task: str, split_cfg: SplitConfig, seed: int, groups: Any = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(train_idx, val_idx), ...]`` positions within ``y``; ``folds == 1`` gives one split."""
    k = split_cfg.folds
    n = len(y)
    if k == 1:
        fraction = split_cfg.val_size / (1 - split_cfg.test_size)
        return [_shuffle_split(y, task, fraction, seed, groups, "validation")]
    strategy = _strategy(task, split_cfg, groups)
    if n < k:
        raise DataError(
            f"split.folds={k} is more than the {n} samples; lower split.folds or gather more data"
        )
    idx = np.arange(n)
    if strategy == "stratified":
        counts = _class_counts(y)
        label, smallest = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if smallest < k:
            raise DataError(
                f"split.folds={k} is more than the {smallest} samples of class '{label}'; "
                "lower split.folds or gather more data"
            )
        splitter: Any = StratifiedKFold(k, shuffle=True, random_state=seed)
        splits = splitter.split(idx, label_strings(y))
    elif strategy == "kfold":
        splits = KFold(k, shuffle=True, random_state=seed).split(idx)
    elif strategy == "timeseries":
        if n <= k:
            raise DataError(
                f"split.folds={k} time-series folds need more than {k} samples, got {n}"
            )
        splits = TimeSeriesSplit(k).split(idx)
    else:
        groups = np.asarray(groups)
        n_groups = len(np.unique(groups))
        if n_groups < k:
            raise DataError(
                f"split.folds={k} is more than the {n_groups} groups; lower split.folds"
            )
        splits = GroupKFold(k, shuffle=True, random_state=seed).split(idx, groups=groups)
    return [(np.sort(a), np.sort(b)) for a, b in splits]


def inner_split(y: Any, task: str, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit_idx, es_idx)``: carve an early-stopping part out of a training part."""
    n = len(y)
    idx = np.arange(n)
    # the fitting part keeps 2 samples at least: a batch of one breaks BatchNorm in training
    if fraction <= 0 or n - int(np.ceil(fraction * n)) < 2:
        return idx, np.empty(0, dtype=np.int64)
    stratify = None
    if task == "classification" and _can_stratify(y, fraction):
        stratify = label_strings(y)
    a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(a), np.sort(b)
