"""The refit run and the model registry: register the refit model, maybe crown it champion."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.tracking.artifacts import write_confusion
from orchestrator.tracking.runs import SearchTracker
from orchestrator.tracking.stores import (
    TAG_ERROR,
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    artifact_folder,
    config_dict,
    default_mode,
    is_better,
    log_metrics,
    log_params,
    metric_base,
    resolve_tracking_uri,
    set_tags,
    tracking_client,
    use_tracking_uri,
)

if TYPE_CHECKING:
    from orchestrator.config import Config
    from orchestrator.pipeline import RefitResult

CHAMPION = "champion"


def registered_model_name(experiment: str) -> str:
    """The experiment name with every run of non-alphanumerics turned into '-'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", experiment).strip("-") or "automl-model"


def log_refit(
    parent: SearchTracker | tuple[str, str, str | None],
    refit: RefitResult,
    config: Config,
    class_names: list[str] | None = None,
    registered_model: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    input_example: Any = None,
    *,
    log_model: Callable[..., Any],
) -> dict[str, Any]:
    """Log the refit model as child run ``refit-best``, register it and maybe crown it champion.

    ``log_model(predictor, name=, input_example=)`` logs the model in the active MLflow run and
    returns its ``ModelInfo`` (``serving.log_predictor``: the tracking layer imports no torch).
    ``parent`` is the SearchTracker or ``(tracking_uri, experiment_id, parent_run_id)``; a None
    parent id makes a top-level run (``automl train``). The alias ``champion`` moves to the new
    version only when its ``test_<metric>`` is strictly better than the current champion's.
    """
    uri, experiment_id, parent_id = parent.ids if isinstance(parent, SearchTracker) else parent
    uri = resolve_tracking_uri(uri)
    client = tracking_client(uri)
    experiment = client.get_experiment(experiment_id).name
    task = refit.predictor.task
    metric = metric or config.search.metric or ("accuracy" if task == "classification" else "r2")
    mode = mode or config.search.mode or default_mode(metric)
    name = registered_model or config.tracking.registered_model or registered_model_name(experiment)

    tags = {TAG_ROLE: "refit", TAG_METRIC: metric, TAG_MODE: mode}
    if parent_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_id
    run = client.create_run(experiment_id, run_name="refit-best", tags=tags).info
    status = "FAILED"
    try:
        logged = _fill_refit_run(
            client,
            uri,
            run,
            refit,
            config,
            class_names,
            name,
            (metric, mode),
            input_example,
            log_model,
        )
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as err:
        set_tags(client, run.run_id, {TAG_ERROR: f"{type(err).__name__}: {err}"})
        raise
    finally:
        client.set_terminated(run.run_id, status)
    return logged


def _fill_refit_run(
    client: MlflowClient,
    uri: str,
    run: Any,
    refit: RefitResult,
    config: Config,
    class_names: list[str] | None,
    name: str,
    scoring: tuple[str, str],
    input_example: Any,
    log_model: Callable[..., Any],
) -> dict[str, Any]:
    """The refit run's parameters, test metrics, config and test tables, then its model: logged,
    registered as a new version of ``name`` and crowned champion if better (``scoring``: the
    metric and its mode)."""
    metric, mode = scoring
    run_id = run.run_id
    score_key = f"test_{metric_base(metric)}"
    test = {k if k.startswith("test_") else f"test_{k}": v for k, v in refit.test_metrics.items()}
    score = test.get(score_key)
    log_params(client, run_id, {**config.flat(), "refit.epochs": refit.epochs})
    log_metrics(client, run_id, test)
    client.log_dict(run_id, config_dict(config), "config.json")
    with artifact_folder(client, run_id, run.artifact_uri) as folder:
        _write_test_tables(folder, refit, class_names)
    version_tags = {score_key: score, TAG_METRIC: metric, TAG_MODE: mode, "automl.run_id": run_id}
    info, version = _log_and_register(
        uri, run_id, refit, name, input_example, version_tags, log_model
    )
    champion = _maybe_crown(client, name, version.version, score_key, score, mode)
    set_tags(
        client,
        run_id,
        {
            "automl.model_uri": info.model_uri,
            "automl.registered_model": name,
            "automl.model_version": version.version,
            "automl.champion": str(champion).lower(),
        },
    )
    return {
        "run_id": run_id,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "registered_model": name,
        "version": str(version.version),
        "champion": champion,
        score_key: score,
        "registry_uri": f"models:/{name}/{version.version}",
    }


def _write_test_tables(folder: Path, refit: RefitResult, class_names: list[str] | None) -> None:
    """The test set's confusion matrix and error analysis, where the refit has them."""
    if refit.test_confusion is not None:
        k = len(refit.test_confusion)
        names = [str(c) for c in (class_names or refit.predictor.target.classes_)]
        write_confusion(
            folder,
            refit.test_confusion,
            names if len(names) == k else [str(i) for i in range(k)],
            "test_confusion_matrix",
        )
    if isinstance(refit.test_errors, pd.DataFrame):
        refit.test_errors.to_csv(folder / "test_error_analysis.csv", index=False)


def _log_and_register(
    uri: str,
    run_id: str,
    refit: RefitResult,
    name: str,
    input_example: Any,
    version_tags: dict[str, Any],
    log_model: Callable[..., Any],
) -> tuple[Any, Any]:
    """The refit's model logged to its run and registered under ``name``: (model info, version)."""
    with use_tracking_uri(uri):
        mlflow.start_run(run_id=run_id, nested=True)
        try:
            info = log_model(refit.predictor, name="model", input_example=input_example)
        finally:
            mlflow.end_run("RUNNING")  # pop the fluent run; the status is set by log_refit
        version = mlflow.register_model(
            info.model_uri, name, tags={k: str(v) for k, v in version_tags.items()}
        )
    return info, version


def _maybe_crown(
    client: MlflowClient, name: str, version: str, key: str, score: float | None, mode: str
) -> bool:
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    old: float | None = None
    if current is not None:
        text = current.tags.get(key)
        if text is None and current.run_id:
            old = client.get_run(current.run_id).data.metrics.get(key)
        else:
            with contextlib.suppress(TypeError, ValueError):
                old = float(text)
    crown = current is None or is_better(score, old, mode)
    if crown:
        client.set_registered_model_alias(name, CHAMPION, version)
    return crown
