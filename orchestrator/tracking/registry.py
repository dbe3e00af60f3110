"""The refit run and the model registry: register the refit model, maybe crown it champion."""

from __future__ import annotations

import contextlib
import importlib
import re
import threading
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


_prewarm: list[threading.Thread] = []


# what a process's first log_refit imports: the pyfunc flavour (with our predictor), the
# registry's SQL store, and the tracing processors and OpenTelemetry metrics log_model sets up
MODEL_LOGGING_MODULES = (
    "orchestrator.serving",
    "orchestrator.plots",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.tracing.processor.base_mlflow",
    "mlflow.tracing.processor.otel",
    "mlflow.models.display_utils",
    "mlflow.utils.model_utils",
    "opentelemetry.sdk.metrics",
)


def prewarm_model_logging() -> threading.Thread:
    """Start, in a daemon thread, the one-off work MLflow does on a process's first log_model
    (once per process: later calls return the same thread).

    MLflow maps every installed module to its distribution to check the model's requirements
    (~1.2 s) and probes for IPython (~0.4 s) the first time a model is logged, and the refit's
    logging imports what :data:`MODEL_LOGGING_MODULES` names (a profiled first ``log_refit``
    after the rest of the warm-up: 1.09 s without them, 0.63 s with them). A search starts
    it in its tail, when a worker has no trial left to run (:class:`WhenTrialsRunOut`), so that
    it runs on the idle core: beside the refit it slowed the refit's training loop ~2.5× (the
    two share the driver's GIL). A failure here only means the work happens later, inside
    log_model, as it would have anyway.
    """
    if _prewarm:
        return _prewarm[0]

    def warm() -> None:
        for name in MODEL_LOGGING_MODULES:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        with contextlib.suppress(Exception):
            from mlflow.tracking.context.registry import resolve_tags
            from mlflow.utils.requirements_utils import _init_packages_to_modules_map

            _init_packages_to_modules_map()
            resolve_tags()

    thread = threading.Thread(target=warm, name="mlflow-prewarm", daemon=True)
    _prewarm.append(thread)
    thread.start()
    return thread


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
) -> dict[str, Any]:
    """Log the refit model as child run ``refit-best``, register it and maybe crown it champion.

    ``parent`` is the SearchTracker or ``(tracking_uri, experiment_id, parent_run_id)``; a None
    parent id makes a top-level run (``automl train``). The alias ``champion`` moves to the new
    version only when its ``test_<metric>`` is strictly better than the current champion's.
    """
    from orchestrator import serving

    if isinstance(parent, SearchTracker):
        uri, experiment_id, parent_id = parent.ids
    else:
        uri, experiment_id, parent_id = parent
    uri = resolve_tracking_uri(uri)
    client = tracking_client(uri)
    experiment = client.get_experiment(experiment_id).name
    task = refit.predictor.task
    metric = metric or config.search.metric or ("accuracy" if task == "classification" else "r2")
    mode = mode or config.search.mode or default_mode(metric)
    score_key = f"test_{metric_base(metric)}"
    test = {k if k.startswith("test_") else f"test_{k}": v for k, v in refit.test_metrics.items()}
    score = test.get(score_key)
    name = registered_model or config.tracking.registered_model or registered_model_name(experiment)

    tags = {TAG_ROLE: "refit", TAG_METRIC: metric, TAG_MODE: mode}
    if parent_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_id
    created = client.create_run(experiment_id, run_name="refit-best", tags=tags).info
    run_id = created.run_id
    status = "FAILED"
    try:
        log_params(client, run_id, {**config.flat(), "refit.epochs": refit.epochs})
        log_metrics(client, run_id, test)
        client.log_dict(run_id, config_dict(config), "config.json")
        with artifact_folder(client, run_id, created.artifact_uri) as folder:
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
        with use_tracking_uri(uri):
            mlflow.start_run(run_id=run_id, nested=True)
            try:
                info = serving.log_predictor(
                    refit.predictor, name="model", input_example=input_example
                )
            finally:
                mlflow.end_run("RUNNING")  # pop the fluent run; the status is set below
            version_tags = {
                score_key: score,
                TAG_METRIC: metric,
                TAG_MODE: mode,
                "automl.run_id": run_id,
            }
            version = mlflow.register_model(
                info.model_uri, name, tags={k: str(v) for k, v in version_tags.items()}
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
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as err:
        set_tags(client, run_id, {TAG_ERROR: f"{type(err).__name__}: {err}"})
        raise
    finally:
        client.set_terminated(run_id, status)
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
