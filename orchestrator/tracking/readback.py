"""Reading searches back from the store: list_searches, best_run, trial_score."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.errors import AutoMLError
from orchestrator.tracking.stores import (
    DEFAULT_EXPERIMENT,
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    metric_base,
    resolve_tracking_uri,
)


def _experiment_ids(client: MlflowClient, experiment: str | None) -> dict[str, str]:
    if experiment is None:
        return {e.experiment_id: e.name for e in client.search_experiments()}
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise AutoMLError(f"no experiment named '{experiment}'; known: {', '.join(names) or '-'}")
    return {found.experiment_id: found.name}


def experiment_ids(tracking_uri: str | None, experiment: str | None = None) -> dict[str, str]:
    """``{experiment id: name}`` of ``experiment``, or of every experiment in the store; an
    unknown name is one line naming the known ones."""
    return _experiment_ids(MlflowClient(resolve_tracking_uri(tracking_uri)), experiment)


def search_all(client: MlflowClient, ids: list[str], filter_string: str, order=None) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            ids, filter_string, max_results=1000, order_by=order, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def trial_score(run: Any, metric: str | None) -> float | None:
    """A trial's final score: ``cv_<name>_mean``, else the last value of ``metric`` itself.

    Without a metric (the search left it to the task) accuracy, else R², is used.
    """
    metrics = run.data.metrics
    if metric:
        value = metrics.get(f"cv_{metric_base(metric)}_mean", metrics.get(metric))
    else:
        value = metrics.get("cv_accuracy_mean", metrics.get("cv_r2_mean"))
    return None if value is None or not np.isfinite(value) else float(value)


def _summary(run: Any) -> dict[str, Any]:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "automl_status": tags.get(TAG_STATUS),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }


def list_searches(tracking_uri: str | None = None, experiment: str | None = None) -> list[dict]:
    """Every search (newest first) with its trials, their status and main metric, and its refit."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    experiments = _experiment_ids(client, experiment)
    ids = list(experiments)
    if not ids:
        return []
    parents = search_all(
        client, ids, f"tags.`{TAG_ROLE}` = 'search'", ["attributes.start_time DESC"]
    )
    children: dict[str, list] = {}
    for run in search_all(
        client, ids, f"tags.`{TAG_ROLE}` != 'search'", ["attributes.start_time ASC"]
    ):
        pid = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
        if pid:
            children.setdefault(pid, []).append(run)
    out = []
    for parent in parents:
        tags = parent.data.tags
        metric, mode = tags.get(TAG_METRIC) or "", tags.get(TAG_MODE) or "max"
        trials, refit = [], None
        for run in children.get(parent.info.run_id, []):
            role = run.data.tags.get(TAG_ROLE)
            if role == "refit":
                refit = {
                    **_summary(run),
                    "model_uri": run.data.tags.get("automl.model_uri"),
                    "registered_model": run.data.tags.get("automl.registered_model"),
                    "version": run.data.tags.get("automl.model_version"),
                    "metrics": dict(run.data.metrics),
                }
            else:
                trials.append(
                    {
                        **_summary(run),
                        "trial_id": run.data.tags.get(TAG_TRIAL),
                        "value": trial_score(run, metric),
                    }
                )
        scored = [t["value"] for t in trials if t["value"] is not None]
        best = (max(scored) if mode == "max" else min(scored)) if scored else None
        out.append(
            {
                **_summary(parent),
                "search": tags.get(TAG_SEARCH),
                "experiment": experiments[parent.info.experiment_id],
                "experiment_id": parent.info.experiment_id,
                "metric": metric or None,
                "mode": mode,
                "algorithm": tags.get("automl.algorithm"),
                "scheduler": tags.get("automl.scheduler"),
                "best_value": best,
                "trials": trials,
                "refit": refit,
            }
        )
    return out


def best_run(
    tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, search: str | None = None
) -> dict[str, Any]:
    """The best trial of the newest search (or of ``search``) by the parent's metric and mode."""
    searches = [
        s
        for s in list_searches(tracking_uri, experiment)
        if search is None or s["search"] == search
    ]
    if not searches:
        which = f"search '{search}'" if search else "searches"
        raise AutoMLError(f"no {which} found in experiment '{experiment}'")
    chosen = searches[0]
    metric, mode = chosen["metric"], chosen["mode"]
    scored = [t for t in chosen["trials"] if t["value"] is not None]
    if not scored:
        raise AutoMLError(f"search '{chosen['search']}' has no trial with a value of {metric}")
    pick = (max if mode == "max" else min)(scored, key=lambda t: t["value"])
    run = MlflowClient(resolve_tracking_uri(tracking_uri)).get_run(pick["run_id"])
    refit = chosen["refit"] or {}
    return {
        **pick,
        "search": chosen["search"],
        "parent_run_id": chosen["run_id"],
        "experiment": chosen["experiment"],
        "metric": metric,
        "mode": mode,
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
        "model_uri": refit.get("model_uri"),
        "registered_model": refit.get("registered_model"),
        "version": refit.get("version"),
        "refit_run_id": refit.get("run_id"),
    }
