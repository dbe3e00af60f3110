"""``automl train`` with MLflow tracking: a parent run, a ``cv`` child and the refit model.

Uses only the tracking package's run objects; MLflow itself stays inside ``orchestrator/tracking``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.config import Config
from orchestrator.crossval import cross_validate, main_metric, metric_mode
from orchestrator.pipeline import TrainResult, final_model, prepare_run


def run_tracked_training(
    config: Config, on_epoch: Callable[[dict[str, float]], None] | None = None
) -> TrainResult:
    """Like :func:`orchestrator.pipeline.run_training`, with every step logged to MLflow."""
    from orchestrator.serving import log_predictor
    from orchestrator.tracking import SearchTracker, TrialTracker, describe_dataset, log_refit

    run = prepare_run(config)
    config = run.config
    task = run.prepared.task
    metric = config.search.metric or main_metric(task)
    mode = config.search.mode or metric_mode(metric)
    experiment = config.tracking.experiment or "automl-train"
    with SearchTracker(config.tracking.tracking_uri, experiment) as parent:
        parent.start(
            config,
            time.strftime("train-%Y%m%d-%H%M%S"),
            tags={
                "automl.kind": "train",
                "automl.family": run.prepared.family,
                "automl.task": task,
            },
            dataset=describe_dataset(run),
            metric=metric,
            mode=mode,
        )
        with TrialTracker(*parent.ids) as child:
            child.start("cv", config)
            cv = cross_validate(run.prepared, config)
            for metrics in cv:
                child.log_epoch(metrics, int(metrics["epoch"]))
                if on_epoch is not None:
                    on_epoch(metrics)
            child.finish(cv.result, task, cv.class_names, run.cleaning.to_dict(), metric)
        refit = final_model(run, config, cv)
        X = run.prepared.dataset.X
        refit.tracking = log_refit(
            parent,
            refit,
            config,
            class_names=cv.class_names,
            registered_model=config.tracking.registered_model,
            metric=metric,
            mode=mode,
            input_example=X.head(5) if hasattr(X, "head") else X[:5],
            log_model=log_predictor,
        )
    return TrainResult(config, run, cv.result, refit)
