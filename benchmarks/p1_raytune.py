"""P1 contender (b): the grid search written by hand as Ray Tune's documentation teaches it.

    python -m benchmarks.p1_raytune --data table.csv --tracking-uri sqlite:///mlflow.db \
        [--epochs 15] [--lr 3e-4 1e-3 ...] [--hidden 64 128,64 ...] [--storage ray_results]

A function trainable that reads the data through ``tune.with_parameters``, runs the 5 folds one
after another (``benchmarks.p1_loop``) on one CPU and one torch thread, and reports the fold-mean
validation accuracy once at the end; ``tune.grid_search`` over lr × hidden sizes, Ray's
``MLflowLoggerCallback`` logging every trial to the MLflow store. Prints a JSON line with the best
CV accuracy last.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.p1_loop import cv_accuracy, load_search_part, parse_args, print_result


def train_fnn(config: dict[str, Any], X, y, epochs: int, style: str) -> None:
    import torch
    from ray import tune

    torch.set_num_threads(1)
    accuracy = cv_accuracy(X, y, config["lr"], config["hidden_sizes"], epochs, style)
    tune.report({"accuracy": accuracy})


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args("python -m benchmarks.p1_raytune", argv)
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    X, y = load_search_part(args.data)
    trainable = tune.with_resources(
        tune.with_parameters(train_fnn, X=X, y=y, epochs=args.epochs, style=args.style), {"cpu": 1}
    )
    tuner = tune.Tuner(
        trainable,
        param_space={
            "lr": tune.grid_search(args.lr),
            "hidden_sizes": tune.grid_search(args.hidden),
        },
        tune_config=tune.TuneConfig(metric="accuracy", mode="max"),
        run_config=tune.RunConfig(
            name="p1",
            storage_path=str(Path(args.storage).resolve()),
            callbacks=[
                MLflowLoggerCallback(
                    tracking_uri=args.tracking_uri, experiment_name="p1", save_artifact=False
                )
            ],
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print_result(
        best.metrics["accuracy"],
        best_config=best.config,
        trials=len(results),
        errors=len(results.errors),
        seconds_before_exit=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
