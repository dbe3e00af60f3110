"""P1 contender (c): the grid search written by hand with Optuna.

    python -m benchmarks.p1_optuna --data table.csv --tracking-uri sqlite:///mlflow.db \
        [--epochs 15] [--lr 3e-4 1e-3 ...] [--hidden 64 128,64 ...]

``optuna.create_study(sampler=GridSampler(grid))`` and ``study.optimize(objective, n_trials,
n_jobs=2)``: two threads, one torch thread each, every objective running the 5 folds one after
another (``benchmarks.p1_loop``); ``optuna.integration.MLflowCallback`` (the
``optuna-integration[mlflow]`` package) logs every trial to the MLflow store. Hidden sizes are
grid options as text (``"128,64"``), because Optuna's categorical choices are scalars. Prints a
JSON line with the best CV accuracy last.
"""

from __future__ import annotations

import sys
import time

from benchmarks.p1_loop import cv_accuracy, load_search_part, parse_args, print_result

N_JOBS = 2


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args("python -m benchmarks.p1_optuna", argv)
    import optuna
    import torch
    from optuna.integration import MLflowCallback

    torch.set_num_threads(1)  # n_jobs runs trials in threads of this process
    X, y = load_search_part(args.data)
    grid = {"lr": args.lr, "hidden_sizes": [",".join(map(str, h)) for h in args.hidden]}

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_categorical("lr", grid["lr"])
        hidden = trial.suggest_categorical("hidden_sizes", grid["hidden_sizes"])
        hidden_sizes = [int(w) for w in hidden.split(",")]
        return cv_accuracy(X, y, lr, hidden_sizes, args.epochs, args.style)

    study = optuna.create_study(
        study_name="p1", direction="maximize", sampler=optuna.samplers.GridSampler(grid)
    )
    mlflow_callback = MLflowCallback(tracking_uri=args.tracking_uri, metric_name="accuracy")
    n_trials = len(grid["lr"]) * len(grid["hidden_sizes"])
    study.optimize(objective, n_trials=n_trials, n_jobs=N_JOBS, callbacks=[mlflow_callback])
    print_result(
        study.best_value,
        best_config=study.best_params,
        trials=len(study.trials),
        distinct_points=len({tuple(sorted(t.params.items())) for t in study.trials}),
        seconds_before_exit=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
