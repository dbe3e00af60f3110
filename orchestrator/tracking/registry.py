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
    disk_full_is_one_line,
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
SETTLE_ROUNDS = 5  # a bound: each round that moves the alias follows a concurrent move


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
    version only when its ``test_<metric>`` is strictly better than the current champion's; when
    searches register into one model at once, the best of the versions registered since the
    champion they replaced ends up with it.
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
        with disk_full_is_one_line(run.artifact_uri):
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
    refit_params = {"refit.epochs": refit.epochs} if refit.epochs is not None else {}
    log_params(client, run_id, {**config.flat(), **refit_params})
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
    """Point ``champion`` at ``version`` if its ``key`` score beats the current champion's;
    whether ``version`` is the champion afterwards."""
    current = _champion(client, name)
    old: float | None = None
    if current is not None:
        old = _version_score(current, key)
        if old is None and key not in current.tags and current.run_id:
            old = client.get_run(current.run_id).data.metrics.get(key)
    if not (current is None or is_better(score, old, mode)):
        # a search that settled the alias meanwhile may have handed it to this version already
        return current is not None and str(current.version) == str(version)
    client.set_registered_model_alias(name, CHAMPION, version)
    # Reading the alias and moving it is not atomic: a search registering into the same model at
    # the same time (another process, a shared server) may have read the same champion and
    # moved the alias after us, or may do so after this. Every search that moved it therefore
    # hands it to the best version registered since the champion it replaced.
    since = int(current.version) if current is not None else 0
    return _settle_champion(client, name, key, mode, since) == str(version)


def _champion(client: MlflowClient, name: str) -> Any:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _version_score(version: Any, key: str) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(version.tags.get(key))
    return None


def _settle_champion(client: MlflowClient, name: str, key: str, mode: str, since: int) -> str:
    """Move ``champion`` to the best-scoring version numbered above ``since`` (the earliest of
    equals) until a read of the alias finds it there; that version."""
    quote = '"' if "'" in name else "'"
    best = ""
    for _ in range(SETTLE_ROUNDS):
        versions = client.search_model_versions(f"name = {quote}{name}{quote}")
        best, best_score = "", None
        for candidate in sorted(versions, key=lambda v: int(v.version)):
            value = _version_score(candidate, key)
            if int(candidate.version) > since and (not best or is_better(value, best_score, mode)):
                best, best_score = str(candidate.version), value
        current = _champion(client, name)
        if not best or (current is not None and str(current.version) == best):
            break
        client.set_registered_model_alias(name, CHAMPION, best)
    return best
