"""Every MLflow tracking call: the search's parent run, one child run per trial, the refit run.

The driver owns every run: the parent (:class:`SearchTracker`), the refit run (:func:`log_refit`)
and, through one writer thread fed by the trials' Tune reports (``writer.TrialRunWriter``), each
trial's child run (:class:`TrialTracker`). Ray workers never import MLflow. Runs always end,
FAILED or KILLED when something goes wrong; metrics are buffered and written with ``log_batch``.

Modules, by noun: ``stores`` (URI, experiments, params/tags/metrics, datasets), ``runs`` (the
search and trial runs), ``writer`` (the trial runs of a search, from the driver), ``artifacts`` (a
trial's CV figures and tables), ``registry`` (the refit run and the champion alias) and
``readback`` (listing searches, picking the best trial).

The names below are imported from their modules on first use: the search's writer (``writer``,
``keys``) is built before MLflow is imported, and MLflow's import (~2.5 s) happens in the
background while the first trials run (``orchestrator.search``).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "artifact_location": "orchestrator.tracking.stores",
    "AutoMLError": "orchestrator.errors",
    "best_run": "orchestrator.tracking.readback",
    "CHAMPION": "orchestrator.tracking.registry",
    "config_dict": "orchestrator.tracking.stores",
    "confusion_frame": "orchestrator.tracking.artifacts",
    "cv_metrics": "orchestrator.tracking.artifacts",
    "dataset_digest": "orchestrator.tracking.stores",
    "DEFAULT_EXPERIMENT": "orchestrator.tracking.stores",
    "default_mode": "orchestrator.tracking.keys",
    "describe_dataset": "orchestrator.tracking.stores",
    "experiment_ids": "orchestrator.tracking.readback",
    "FLUSH_SECONDS": "orchestrator.tracking.trialrun",
    "get_or_create_experiment": "orchestrator.tracking.stores",
    "git_commit": "orchestrator.tracking.stores",
    "is_better": "orchestrator.tracking.keys",
    "list_searches": "orchestrator.tracking.readback",
    "log_metrics": "orchestrator.tracking.stores",
    "log_params": "orchestrator.tracking.stores",
    "log_refit": "orchestrator.tracking.registry",
    "LOWER_IS_BETTER": "orchestrator.tracking.keys",
    "MAX_PARAM_LENGTH": "orchestrator.tracking.stores",
    "MAX_TAG_LENGTH": "orchestrator.tracking.stores",
    "metric_base": "orchestrator.tracking.keys",
    "METRICS_PER_BATCH": "orchestrator.tracking.stores",
    "one_line": "orchestrator.tracking.stores",
    "param_value": "orchestrator.tracking.stores",
    "PARAMS_PER_BATCH": "orchestrator.tracking.stores",
    "registered_model_name": "orchestrator.tracking.registry",
    "resolve_tracking_uri": "orchestrator.tracking.stores",
    "runs_view_url": "orchestrator.tracking.keys",
    "SearchTracker": "orchestrator.tracking.runs",
    "set_tags": "orchestrator.tracking.stores",
    "TAG_ERROR": "orchestrator.tracking.keys",
    "TAG_METRIC": "orchestrator.tracking.keys",
    "TAG_MODE": "orchestrator.tracking.keys",
    "TAG_ROLE": "orchestrator.tracking.keys",
    "TAG_SEARCH": "orchestrator.tracking.keys",
    "TAG_STATUS": "orchestrator.tracking.keys",
    "TAG_TRIAL": "orchestrator.tracking.keys",
    "trial_score": "orchestrator.tracking.readback",
    "TrialTracker": "orchestrator.tracking.trialrun",
    "TRUNCATED": "orchestrator.tracking.stores",
    "use_tracking_uri": "orchestrator.tracking.stores",
    "write_confusion": "orchestrator.tracking.artifacts",
    "write_cv_artifacts": "orchestrator.tracking.artifacts",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
