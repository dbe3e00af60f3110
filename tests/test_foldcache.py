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


def test_folds_fitted_in_threads_equal_folds_fitted_one_after_another(monkeypatch):
    """A large table's folds are fitted in threads; what they hold must not depend on that."""
    import orchestrator.folds as folds

    config = tiny_config(**{"split.folds": 3, "data.scaling": "minmax"})
    prepared = prepare_run(config).prepared
    monkeypatch.setattr(folds, "THREADED_FOLDS_VALUES", 0)  # iris counts as large
    threaded = folds.precompute_folds(prepared, config)
    monkeypatch.setattr(folds, "MAX_FOLD_THREADS", 1)
    sequential = folds.precompute_folds(prepared, config)
    assert list(threaded.folds.entries) == list(sequential.folds.entries)  # keys, in fold order
    for key, a in threaded.folds.entries.items():
        b = sequential.folds.entries[key]
        assert a.preprocessor == b.preprocessor
        for part in ("fit", "val"):
            x, y = getattr(a, part), getattr(b, part)
            assert torch.equal(x.x, y.x) and torch.equal(x.y, y.y)


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


def test_folds_fitted_in_the_driver_train_identically_to_a_trials_own():
    """precompute_folds (the driver, before the trials) against the folds a trial fits."""
    from orchestrator.folds import FoldShape, precompute_folds

    config = tiny_config(**{"split.folds": 3, "training.epochs": 3})
    run = prepare_run(config)
    own, cv_own = _run(run.prepared, config)
    FOLD_CACHE.clear()
    driver = precompute_folds(run.prepared, config)
    assert driver.token == run.prepared.token and len(driver.folds.entries) == 3
    shared, cv_shared = _run(driver, config)
    assert shared == own
    np.testing.assert_array_equal(cv_shared.result.oof_output, cv_own.result.oof_output)
    for a, b in zip(cv_shared.splits, cv_own.splits, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # the trial used the driver's folds: no scikit-learn preprocessor, no fit of its own
    assert all(isinstance(f.preprocessor, FoldShape) for f in cv_shared.folds)
    assert (
        cv_shared.folds[0].preprocessor.output_shape_ == cv_own.folds[0].preprocessor.output_shape_
    )
    assert FOLD_CACHE.hits == 0 and len(FOLD_CACHE) == 0


@pytest.mark.parametrize(
    "change",
    [{"data.scaling": "minmax"}, {"split.folds": 2}, {"seed": 7}],
    ids=["scaling", "folds", "seed"],
)
def test_a_trial_that_changes_the_folds_fits_its_own(change):
    from orchestrator.folds import FoldShape, precompute_folds

    config = tiny_config(**{"split.folds": 3, "training.epochs": 1})
    driver = precompute_folds(prepare_run(config).prepared, config)
    changed = tiny_config(**{"split.folds": 3, "training.epochs": 1, **change})
    _, cv = _run(driver, changed)
    assert not any(isinstance(f.preprocessor, FoldShape) for f in cv.folds)
    assert len(cv.splits) == changed.split.folds


def test_the_search_fits_the_folds_once_unless_its_space_changes_them():
    from orchestrator.search import trial_data

    config = tiny_config(**{"search.space": {"training.optimizer.lr": {"grid": [0.01, 0.1]}}})
    prepared = prepare_run(config).prepared
    assert trial_data(prepared, config).folds is not None
    for key, values in [("data.scaling", ["minmax", "standard"]), ("split.folds", [2, 3])]:
        varied = tiny_config(**{"search.space": {key: {"grid": values}}})
        assert trial_data(prepared, varied) is prepared


WORKER_SCRIPT = """
import pickle, sys
import orchestrator.trial  # what a Ray trial worker preloads
from orchestrator.crossval import cross_validate
from tests.conftest import tiny_config

prepared = pickle.load(open(sys.argv[1], "rb"))
before = sorted(m for m in ("sklearn", "scipy") if m in sys.modules)
history = list(cross_validate(prepared, tiny_config(**{"split.folds": 3, "training.epochs": 2})))
after = sorted(m for m in ("sklearn", "scipy") if m in sys.modules)
print("RESULT", before, after, round(history[-1]["val_accuracy"], 6))
"""


@pytest.mark.parametrize("in_driver", [True, False], ids=["driver-folds", "own-folds"])
def test_a_worker_on_driver_folds_never_imports_scikit_learn(tmp_path, in_driver):
    """In a fresh interpreter, as in a Ray worker: the trainable's imports and a whole
    cross-validation on the driver's folds load no scikit-learn; on its own folds it does."""
    import pickle

    from orchestrator.folds import precompute_folds
    from tests.e2e_helpers import script_result

    config = tiny_config(**{"split.folds": 3, "training.epochs": 2})
    prepared = prepare_run(config).prepared
    if in_driver:
        prepared = precompute_folds(prepared, config)
    (tmp_path / "prepared.pkl").write_bytes(pickle.dumps(prepared))
    line = script_result(WORKER_SCRIPT, str(tmp_path / "prepared.pkl"), timeout=120)
    assert line.startswith("[] ")  # importing the trainable loads neither
    after = "[]" if in_driver else "['scipy', 'sklearn']"
    assert f"] {after} " in line, line
    history = list(cross_validate(prepared, config))  # the same result as in this process
    assert line.endswith(str(round(history[-1]["val_accuracy"], 6)))
