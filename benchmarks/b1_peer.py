"""B1 peer: ``automl search`` against skorch's ``GridSearchCV`` on the same grid and network.

Both contenders train the 8-point grid (lr 1e-3/3e-3 × hidden [64], [128], [64, 64], [128, 128];
Adam, batch 64, ReLU FNN, no dropout, no batch norm, no early stopping) under 5-fold CV on digits
read as a table and min-max scaled, with a 15% test split, and refit the best point. Ours runs as
the real command (``automl search``, grid, MLflow on, Ray start included); skorch as
``GridSearchCV(n_jobs=2, cv=5)`` over a scaler + ``NeuralNetClassifier`` pipeline. Both are timed
from process start to exit, alternating in each repetition, beside a third contender: our same
command with one epoch, the floor that everything but training puts under our wall time.

Two more contenders bound what any tool built on Ray Tune could reach here, without our code:
the same 8-point grid through plain Ray Tune with trials that do nothing (``tune_noop``), and the
same with the imports a PyTorch + MLflow search cannot avoid (``tune_noop_stack``: torch,
scikit-learn and MLflow in the driver, overlapping ``ray.init`` as ours do; torch in every trial).
Both leave as ``automl`` does (Ray stopped, no interpreter teardown). Every contender's CPU time
(all its processes) is sampled, to show whether the 2 cores, not waiting, bound its wall.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    B1_SPACE,
    CORES,
    FAST_EXIT,
    BenchContext,
    alternate,
    child_main,
    digits_config,
    goal,
    median,
    ratio,
    run_child,
    run_command,
)

DEFAULT_REPS = 3
FLOOR_EPOCHS = 1  # the floor contender: everything but (almost all of) the training


def epochs(ctx: BenchContext) -> int:
    return 4 if ctx.quick else 20


def automl_command(ctx: BenchContext, folder: Path, n_epochs: int) -> list[str]:
    """``automl search --config cfg.yaml --json result.json`` with its own MLflow store."""
    import yaml

    config = digits_config(n_epochs, tracking=True, tracking_uri=ctx.tracking_uri(folder))
    cfg = folder / "b1.yaml"
    cfg.write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    exe = shutil.which("automl")
    head = [exe] if exe else [sys.executable, "-m", "orchestrator.cli"]
    return [
        *head,
        "search",
        "--config",
        str(cfg),
        "--json",
        str(folder / "result.json"),
        "--experiment",
        "b1",
    ]


def run_automl(ctx: BenchContext, n_epochs: int) -> dict[str, Any]:
    folder = ctx.scratch("b1-automl")
    out = run_command(automl_command(ctx, folder, n_epochs), folder, "automl-search", cpu=True)
    result = json.loads((folder / "result.json").read_text())
    best = result.get("best") or {}
    return {
        **out,
        "search_wall_s": result.get("wall_s"),
        "num_trials": result.get("num_trials"),
        "best_cv_accuracy": best.get("cv", {}).get("accuracy", {}).get("mean"),
        "best_config": best.get("config"),
        "test_accuracy": (best.get("test") or {}).get("accuracy"),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    n_epochs, reps = epochs(ctx), ctx.repetitions(DEFAULT_REPS)
    rows = []
    for rep in range(reps):
        order = alternate(rep, CONTENDERS)
        row: dict[str, Any] = {"rep": rep, "order": order}
        for who in row["order"]:
            ctx.log(f"B1 rep {rep + 1}/{reps}: {who}")
            if who == "automl":
                row["automl"] = run_automl(ctx, n_epochs)
            elif who == "automl_floor":
                row["automl_floor"] = run_automl(ctx, FLOOR_EPOCHS)
            else:
                payload = {"kind": who, "epochs": n_epochs}
                row[who] = run_child("b1_peer", payload, ctx.scratch(f"b1-{who}"), cpu=True)
        skorch_wall = row["skorch"]["process_wall_s"]
        row["wall_ratio"] = ratio(row["automl"]["process_wall_s"], skorch_wall)
        for who in ("automl_floor", "tune_noop", "tune_noop_stack"):
            row[f"{who}_ratio"] = ratio(row[who]["process_wall_s"], skorch_wall)
        rows.append(row)
    ours_acc = median([r["automl"]["best_cv_accuracy"] for r in rows])
    skorch_acc = median([r["skorch"]["best_cv_accuracy"] for r in rows])
    figures = {
        "automl_wall_s": median([r["automl"]["process_wall_s"] for r in rows]),
        "automl_search_wall_s": median([r["automl"]["search_wall_s"] for r in rows]),
        "skorch_wall_s": median([r["skorch"]["process_wall_s"] for r in rows]),
        "skorch_fit_s": median([r["skorch"]["fit_s"] for r in rows]),
        "wall_ratio": median([r["wall_ratio"] for r in rows]),
        "automl_floor_wall_s": median([r["automl_floor"]["process_wall_s"] for r in rows]),
        "floor_ratio": median([r["automl_floor_ratio"] for r in rows]),
        "tune_noop_wall_s": median([r["tune_noop"]["process_wall_s"] for r in rows]),
        "tune_noop_ratio": median([r["tune_noop_ratio"] for r in rows]),
        "tune_noop_stack_wall_s": median([r["tune_noop_stack"]["process_wall_s"] for r in rows]),
        "tune_noop_stack_ratio": median([r["tune_noop_stack_ratio"] for r in rows]),
        **cpu_figures(rows),
        "automl_best_cv_accuracy": ours_acc,
        "skorch_best_cv_accuracy": skorch_acc,
        "accuracy_difference": None if ours_acc is None else ours_acc - skorch_acc,
        "epochs": n_epochs,
        "grid_points": 8,
        "folds": 5,
    }
    return {
        "title": "B1 peer: automl search vs skorch GridSearchCV (digits, 8-point grid, 5 folds)",
        "figures": figures,
        "reps": rows,
        "goals": [
            goal("B1 wall time vs skorch (ratio)", figures["wall_ratio"], "<=", 0.7, "x"),
            goal("B1 best CV accuracy minus skorch's", figures["accuracy_difference"], ">=", 0.0),
        ],
        "notes": [
            "Walls are process start to exit for both (imports, Ray start, refit and test "
            "included); automl_search_wall_s is run_search alone, skorch_fit_s GridSearchCV.fit.",
            "Each automl run starts from an empty, already-migrated SQLite MLflow store.",
            "skorch: Pipeline(MinMaxScaler, NeuralNetClassifier(train_split=None, shuffled "
            "batches)), GridSearchCV(n_jobs=2, cv=5, refit=True); sklearn's digits with a "
            "stratified 15% test split.",
            "The wall ratio is the median of the per-repetition (paired) ratios.",
            f"automl_floor: the same automl search with {FLOOR_EPOCHS} epoch instead of "
            f"{n_epochs} (Ray and worker start-up, MLflow, Tune, refit, model logging and exit "
            "with almost no training); floor_ratio = its wall / skorch's, paired: no training "
            "speed-up can bring wall_ratio below it.",
            "tune_noop: plain Ray Tune (ray.init on the 2 CPUs, Tuner over the same 8-point grid, "
            "reuse_actors, trials that only report) with automl's exit (Ray stopped, no "
            "interpreter teardown); tune_noop_stack: the same plus the imports a PyTorch + "
            "MLflow search needs (torch, scikit-learn and MLflow in the driver, in a thread "
            "overlapping ray.init; torch in each trial). Their ratios (paired, to skorch's wall) "
            "are what Ray Tune alone, and Ray Tune with the stack loaded, cost before any data, "
            "training, tracking or refit.",
            "*_cpu_s: CPU seconds (user + system) of the contender's processes (driver, Ray's "
            "daemons, workers, joblib's workers), sampled every 0.1 s (a lower bound); "
            "*_cpu_utilisation = that / (wall × cores): near 1 the cores, not waiting, bound the "
            "wall, and only less CPU work can shorten it. automl_cpu_s_by_process: the median "
            "repetition's split.",
        ],
    }


def profile(ctx: BenchContext) -> dict[str, Any]:
    """Our side of B1 (MLflow on, with refit) under cProfile, driver and trials."""
    from benchmarks.profiling import profile_search

    folder = ctx.scratch("b1-profile")
    config = digits_config(epochs(ctx), tracking=True, tracking_uri=ctx.tracking_uri(folder))
    return profile_search(config.model_dump(), folder, refit=True)


CONTENDERS = ["automl", "skorch", "automl_floor", "tune_noop", "tune_noop_stack"]


def cpu_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median CPU seconds and core utilisation of every contender, and automl's split."""
    figures: dict[str, Any] = {}
    for who in CONTENDERS:
        cpu = [r[who].get("cpu") or {} for r in rows]
        figures[f"{who}_cpu_s"] = median([c.get("tree_cpu_s") for c in cpu])
        figures[f"{who}_cpu_utilisation"] = median([c.get("tree_utilisation") for c in cpu])
    ours = sorted(
        (r["automl"]["cpu"] for r in rows if r["automl"].get("cpu")),
        key=lambda c: c["tree_cpu_s"],
    )
    if ours:
        figures["automl_cpu_s_by_process"] = ours[len(ours) // 2]["tree_cpu_s_by_process"]
    return figures


# --------------------------------------------------------------------------- child side
def skorch_search(n_epochs: int) -> dict[str, Any]:
    started = time.perf_counter()
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler
    from skorch import NeuralNetClassifier

    from benchmarks.common import mlp

    imports_s = time.perf_counter() - started
    X, y = load_digits(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.int64)
    X_tv, X_test, y_tv, y_test = train_test_split(X, y, test_size=0.15, stratify=y, random_state=0)
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        mlp,
        module__n_in=X.shape[1],
        module__n_out=10,
        module__hidden_sizes=[64],
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=64,
        max_epochs=n_epochs,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
        device="cpu",
    )
    grid = {
        "net__lr": B1_SPACE["training.optimizer.lr"]["grid"],
        "net__module__hidden_sizes": B1_SPACE["model.hidden_sizes"]["grid"],
    }
    search = GridSearchCV(
        Pipeline([("scale", MinMaxScaler()), ("net", net)]),
        grid,
        cv=5,
        n_jobs=2,
        scoring="accuracy",
        refit=True,
    )
    fit_started = time.perf_counter()
    search.fit(X_tv, y_tv)
    fit_s = time.perf_counter() - fit_started
    return {
        "imports_s": imports_s,
        "fit_s": fit_s,
        "best_cv_accuracy": float(search.best_score_),
        "best_params": {k: v for k, v in search.best_params_.items()},
        "test_accuracy": float(search.score(X_test, y_test)),
    }


def _noop_trial(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"accuracy": 0.0})


def _noop_torch_trial(config: dict[str, Any]) -> None:
    import torch  # noqa: F401  (what every PyTorch trial imports)
    from ray import tune

    tune.report({"accuracy": 0.0})


def tune_noop(stack: bool) -> dict[str, Any]:
    """B1's grid through plain Ray Tune with trials that do nothing (``stack``: with the imports
    of a PyTorch + MLflow search); ends as ``automl`` does."""
    import threading

    started = time.perf_counter()

    def stack_imports() -> None:
        import mlflow  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        import torch  # noqa: F401

    importer = threading.Thread(target=stack_imports) if stack else None
    if importer is not None:
        importer.start()
    import ray
    from ray import tune

    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - started
    if importer is not None:
        importer.join()
    tuner = tune.Tuner(
        _noop_torch_trial if stack else _noop_trial,
        param_space={key: tune.grid_search(spec["grid"]) for key, spec in B1_SPACE.items()},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(Path.cwd() / "ray_results"), verbose=0),
    )
    fit_started = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - fit_started
    ray.shutdown()
    return {
        "init_s": init_s,
        "fit_s": fit_s,
        "trials": len(results),
        "errors": len(results.errors),
        FAST_EXIT: True,
    }


def child(payload: dict[str, Any]) -> dict[str, Any]:
    if payload["kind"] == "skorch":
        return skorch_search(int(payload["epochs"]))
    if payload["kind"] in ("tune_noop", "tune_noop_stack"):
        return tune_noop(stack=payload["kind"] == "tune_noop_stack")
    raise ValueError(f"unknown child kind {payload['kind']!r}")


if __name__ == "__main__":
    child_main(child)
