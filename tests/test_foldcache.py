"""The per-process fold cache: reused only where the preprocessing would be identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import TensorData
from orchestrator.crossval import cross_validate
from orchestrator.foldcache import FOLD_CACHE, FoldCache, FoldData
from orchestrator.pipeline import prepare_run
from tests.conftest import tiny_config


@pytest.fixture(autouse=True)
def _empty_cache():
    FOLD_CACHE.clear()
    yield
    FOLD_CACHE.clear()


def _run(prepared, config):
    cv = cross_validate(prepared, config)
    history = list(cv)
    return history, cv


def test_a_second_trial_reuses_the_folds_and_trains_identically():
    config = tiny_config(**{"split.folds": 3, "training.epochs": 3})
    run = prepare_run(config)
    first, cv1 = _run(run.prepared, config)
    assert (FOLD_CACHE.hits, FOLD_CACHE.misses) == (0, 3)
    other = tiny_config(**{"split.folds": 3, "training.epochs": 3, "training.optimizer.lr": 0.05})
    _run(run.prepared, other)  # another learning rate: same preprocessing, served from the cache
    assert (FOLD_CACHE.hits, FOLD_CACHE.misses) == (3, 3)
    again, cv2 = _run(run.prepared, config)
    assert again == first
    np.testing.assert_array_equal(cv2.result.oof_output, cv1.result.oof_output)
    # the cached fold is the very object the second trial got, not a refit
    assert cv2.folds[0].preprocessor is cv1.folds[0].preprocessor


@pytest.mark.parametrize(
    "change",
    [
        {"data.scaling": "minmax"},
        {"split.folds": 2},
        {"seed": 7},
        {"training.early_stopping.enabled": True},
    ],
    ids=["scaling", "folds", "seed", "early-stopping-split"],
)
def test_anything_the_preprocessing_depends_on_misses_the_cache(change):
    config = tiny_config(**{"split.folds": 3, "training.epochs": 1})
    run = prepare_run(config)
    _run(run.prepared, config)
    changed = tiny_config(**{"split.folds": 3, "training.epochs": 1, **change})
    _, cv = _run(run.prepared, changed)
    assert FOLD_CACHE.hits == 0
    if "data.scaling" in change:  # min-max scaled training fold spans [0, 1]
        ds = run.prepared.dataset
        x = cv.folds[0].preprocessor.transform(ds.subset(cv.splits[0][0]).X)
        np.testing.assert_allclose(x.min(axis=0), 0.0, atol=1e-6)


def test_new_prepared_data_never_sees_another_datas_folds():
    config = tiny_config(**{"training.epochs": 1})
    _run(prepare_run(config).prepared, config)
    _run(prepare_run(config).prepared, config)  # same source, but prepared again: a new token
    assert FOLD_CACHE.hits == 0


def _entry(n_rows: int) -> FoldData:
    part = TensorData(torch.zeros(n_rows, 4), torch.zeros(n_rows, dtype=torch.long))
    return FoldData(None, None, part, None, None)


def test_the_cache_is_bounded_by_count_and_by_bytes():
    cache = FoldCache(max_folds=2, max_bytes=10_000)
    for i in range(3):
        cache.put(("k", i), _entry(10))
    assert len(cache) == 2 and cache.get(("k", 0)) is None  # the oldest went first
    cache.put(("big",), _entry(1_000))  # 16 kB alone: over the byte bound, never stored
    assert cache.get(("big",)) is None
    cache.put(("k", 3), _entry(200))  # 4.8 kB + the rest must stay under 10 kB
    assert cache.nbytes <= 10_000
    assert cache.get(("k", 3)) is not None
