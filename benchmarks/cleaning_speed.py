"""Time the driver's data preparation (load, modality, task, cleaning, hold-out split).

Also times one fold's preprocessing fit on B4's table, and the numeric imputer it uses
(``data/imputing.py``) against scikit-learn's ``SimpleImputer`` on the same rows.

Runs ``orchestrator.pipeline.prepare_run`` on B4's table (``make_classification``, written to
Parquet exactly as ``benchmarks/b4_scale.py`` writes it) and on the builtin digits and
breast_cancer datasets, and prints the seconds each stage takes::

    python -m benchmarks.cleaning_speed                # 200,000 x 50
    python -m benchmarks.cleaning_speed --rows 20000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _timed(what: str, fn: Callable[[], Any], times: dict[str, float]) -> Any:
    start = time.perf_counter()
    result = fn()
    times[what] = time.perf_counter() - start
    return result


def stage_times(config) -> dict[str, float]:
    """Seconds for each stage of ``prepare_run`` on ``config``, then for the whole call."""
    from data import clean_dataset, detect_task, holdout_split, load_dataset
    from orchestrator.crossval import fold_seed
    from orchestrator.pipeline import prepare_run

    dc, times = config.data, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _timed(
            "load",
            lambda: load_dataset(
                dc.source, dc.target, dc.modality, config.model.family, dc.group_column
            ),
            times,
        )
        task = _timed("detect_task", lambda: detect_task(ds.y, dc.task), times)
        ds, _ = _timed("clean", lambda: clean_dataset(ds, dc.cleaning, task), times)
        _timed(
            "holdout_split",
            lambda: holdout_split(
                ds.y, task, config.split.test_size, fold_seed(config.seed, 0), groups=ds.groups
            ),
            times,
        )
        _timed("prepare_run", lambda: prepare_run(config), times)
    return times


def fold_times(config) -> dict[str, float]:
    """Seconds of one fold's preprocessing fit (``fit_fold``, no cache) and of the imputers."""
    import numpy as np
    from sklearn.impute import SimpleImputer

    from data.imputing import NumericImputer
    from orchestrator.folds import fit_fold, fold_seed
    from orchestrator.pipeline import prepare_run

    run, times = prepare_run(config), {}
    ds = run.prepared.dataset
    train = np.arange(ds.n_samples)[: ds.n_samples * 2 // 3]
    val = np.arange(ds.n_samples)[ds.n_samples * 2 // 3 :]
    args = (ds, train, val, run.prepared, config, fold_seed(config.seed, 1, 0))
    _timed("fit_fold", lambda: fit_fold(*args, name="refit"), times)
    X = ds.X.iloc[train].select_dtypes("number")
    _timed("SimpleImputer(median).fit", lambda: SimpleImputer(strategy="median").fit(X), times)
    _timed("NumericImputer(median).fit", lambda: NumericImputer(strategy="median").fit(X), times)
    return times


def _print(name: str, times: dict[str, float]) -> None:
    stages = "  ".join(f"{k} {v:.3f}" for k, v in times.items() if k != "prepare_run")
    print(f"{name:<28} prepare_run {times['prepare_run']:7.3f} s   ({stages})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="cProfile prepare_run on B4")
    args = parser.parse_args()

    from benchmarks.b4_scale import make_table, table_config
    from benchmarks.common import search_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"b4-{args.rows}x{args.features}.parquet"
        make_table(str(path), args.rows, args.features)
        b4 = table_config(str(path), 4, 5)
        if args.profile:
            from orchestrator.pipeline import prepare_run

            profiler = cProfile.Profile()
            profiler.runcall(prepare_run, b4)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        _print(f"b4 {args.rows}x{args.features}", stage_times(b4))
        folds = fold_times(b4)
        print(
            f"{'one fold, 2/3 of the rows':<28} "
            + "  ".join(f"{k} {v:.3f}" for k, v in folds.items())
        )
    for name in ("digits", "breast_cancer"):
        config = search_config({"data.source": f"builtin:{name}", "tracking.enabled": False})
        _print(name, stage_times(config))


if __name__ == "__main__":
    main()
