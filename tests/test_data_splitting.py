"""Seeded splits: held-out test part, k folds by strategy, early-stopping sets."""

from __future__ import annotations

import numpy as np
import pytest

from data import holdout_split, inner_split, make_folds
from orchestrator.config import SplitConfig
from orchestrator.errors import ConfigError, DataError

Y_CLASS = np.array(["a"] * 30 + ["b"] * 20 + ["c"] * 10, dtype=object)
Y_REG = np.linspace(0, 1, 60)


def _covers(splits, n):
    for train, val in splits:
        assert not set(train) & set(val)
        assert len(train) + len(val) <= n


def test_holdout_is_stratified_and_deterministic():
    trainval, test = holdout_split(Y_CLASS, "classification", 0.2, seed=0)
    again = holdout_split(Y_CLASS, "classification", 0.2, seed=0)
    assert np.array_equal(test, again[1]) and len(test) == 12
    assert sorted(Y_CLASS[test].tolist()) == ["a"] * 6 + ["b"] * 4 + ["c"] * 2
    assert not set(trainval) & set(test) and len(trainval) + len(test) == 60


def test_holdout_by_groups():
    groups = np.repeat(np.arange(12), 5)
    trainval, test = holdout_split(Y_REG, "regression", 0.25, seed=1, groups=groups)
    assert not set(groups[trainval]) & set(groups[test])


@pytest.mark.parametrize(
    ("task", "y", "strategy", "groups"),
    [
        ("classification", Y_CLASS, "auto", None),
        ("regression", Y_REG, "auto", None),
        ("regression", Y_REG, "kfold", None),
        ("regression", Y_REG, "timeseries", None),
        ("classification", Y_CLASS, "auto", np.repeat(np.arange(10), 6)),
        ("classification", Y_CLASS, "group", np.repeat(np.arange(10), 6)),
    ],
    ids=["stratified", "kfold-auto", "kfold", "timeseries", "group-auto", "group"],
)
def test_make_folds_strategies(task, y, strategy, groups):
    cfg = SplitConfig(folds=5, strategy=strategy)
    folds = make_folds(y, task, cfg, seed=3, groups=groups)
    again = make_folds(y, task, cfg, seed=3, groups=groups)
    assert len(folds) == 5
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    _covers(folds, len(y))
    if strategy != "timeseries":
        assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(len(y)))
    else:
        assert all(train.max() < val.min() for train, val in folds)
    if groups is not None:
        assert all(not set(groups[t]) & set(groups[v]) for t, v in folds)
    if task == "classification" and groups is None:
        assert all(sorted(set(Y_CLASS[v])) == ["a", "b", "c"] for _, v in folds)


def test_single_fold_uses_validation_fraction():
    cfg = SplitConfig(folds=1, test_size=0.25, val_size=0.25)
    [(train, val)] = make_folds(Y_CLASS, "classification", cfg, seed=0)
    assert len(val) == 20 and len(train) == 40  # 0.25 / 0.75 of the given part
    assert sorted(set(Y_CLASS[val])) == ["a", "b", "c"]


def test_fold_errors():
    y = np.array(["x"] * 3 + ["y"] * 20, dtype=object)
    with pytest.raises(
        DataError,
        match=r"split.folds=10 is more than the 3 samples of class 'x'; "
        "lower split.folds or gather more data",
    ):
        make_folds(y, "classification", SplitConfig(folds=10), seed=0)
    with pytest.raises(DataError, match="split.folds=5 is more than the 4 samples"):
        make_folds(np.arange(4.0), "regression", SplitConfig(folds=5), seed=0)
    with pytest.raises(ConfigError, match="split.strategy='group' needs groups"):
        make_folds(Y_REG, "regression", SplitConfig(strategy="group"), seed=0)


def test_inner_split():
    fit, es = inner_split(Y_CLASS, "classification", 0.2, seed=0)
    assert len(es) == 12 and sorted(set(Y_CLASS[es])) == ["a", "b", "c"]
    assert sorted(np.concatenate([fit, es]).tolist()) == list(range(60))
    y = np.array(["a", "a", "a", "b"], dtype=object)  # 'b' has 1 member: plain split
    fit, es = inner_split(y, "classification", 0.25, seed=0)
    assert len(es) == 1 and len(fit) == 3
    fit, es = inner_split(Y_REG, "regression", 0.0, seed=0)
    assert len(es) == 0 and len(fit) == 60
