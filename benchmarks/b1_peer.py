"""B1 peer: ``automl search`` against skorch's ``GridSearchCV`` on the same grid and network.

Both contenders train the 8-point grid (lr 1e-3/3e-3 × hidden [64], [128], [64, 64], [128, 128];
Adam, batch 64, ReLU FNN, no dropout, no batch norm, no early stopping) under 5-fold CV on digits
read as a table and min-max scaled, with a 15% test split, and refit the best point. Ours runs as
the real command (``automl search``, grid, MLflow on, Ray start included); skorch as
``GridSearchCV(n_jobs=2, cv=5)`` over a scaler + ``NeuralNetClassifier`` pipeline. Both are timed
from process start to exit, alternating in each repetition, beside a third contender: our same
command with one epoch, the floor that everything but training puts under our wall time.
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
    out = run_command(automl_command(ctx, folder, n_epochs), folder, "automl-search")
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
        order = alternate(rep, ["automl", "skorch", "automl_floor"])
        row: dict[str, Any] = {"rep": rep, "order": order}
        for who in row["order"]:
            ctx.log(f"B1 rep {rep + 1}/{reps}: {who}")
            if who == "automl":
                row["automl"] = run_automl(ctx, n_epochs)
            elif who == "automl_floor":
                row["automl_floor"] = run_automl(ctx, FLOOR_EPOCHS)
            else:
                payload = {"kind": "skorch", "epochs": n_epochs}
                row["skorch"] = run_child("b1_peer", payload, ctx.scratch("b1-skorch"))
        skorch_wall = row["skorch"]["process_wall_s"]
        row["wall_ratio"] = ratio(row["automl"]["process_wall_s"], skorch_wall)
        row["floor_ratio"] = ratio(row["automl_floor"]["process_wall_s"], skorch_wall)
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
        "floor_ratio": median([r["floor_ratio"] for r in rows]),
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
            goal("B1 wall time vs skorch (ratio)", figures["wall_ratio"], "<=", 0.5, "x"),
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
        ],
    }


def profile(ctx: BenchContext) -> dict[str, Any]:
    """Our side of B1 (MLflow on, with refit) under cProfile, driver and trials."""
    from benchmarks.profiling import profile_search

    folder = ctx.scratch("b1-profile")
    config = digits_config(epochs(ctx), tracking=True, tracking_uri=ctx.tracking_uri(folder))
    return profile_search(config.model_dump(), folder, refit=True)


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


def child(payload: dict[str, Any]) -> dict[str, Any]:
    if payload["kind"] == "skorch":
        return skorch_search(int(payload["epochs"]))
    raise ValueError(f"unknown child kind {payload['kind']!r}")


if __name__ == "__main__":
    child_main(child)
