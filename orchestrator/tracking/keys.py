"""The tags a search's runs carry and how a metric's values compare: no MLflow here, so that the
driver can build a search's writer (``writer``) before MLflow is imported."""

from __future__ import annotations

import math

LOWER_IS_BETTER = {"loss", "log_loss", "mse", "rmse", "mae"}

TAG_ROLE = "automl.role"  # search | trial | refit
TAG_SEARCH = "automl.search"
TAG_TRIAL = "automl.trial_id"
TAG_METRIC = "automl.metric"
TAG_MODE = "automl.mode"
TAG_STATUS = "automl.status"
TAG_ERROR = "automl.error"


def metric_base(metric: str) -> str:
    """``val_accuracy`` / ``cv_accuracy_mean`` / ``test_accuracy`` -> ``accuracy``."""
    name = metric.removesuffix("_mean")
    for prefix in ("val_", "test_", "cv_"):
        name = name.removeprefix(prefix)
    return name


def default_mode(metric: str) -> str:
    return "min" if metric_base(metric) in LOWER_IS_BETTER else "max"


def is_better(new: float | None, old: float | None, mode: str) -> bool:
    """Strictly better; a missing or NaN ``old`` loses to any finite ``new``."""
    if new is None or not math.isfinite(new):
        return False
    if old is None or not math.isfinite(old):
        return True
    return new > old if mode == "max" else new < old


def runs_view_url(tracking_uri: str, experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """Where the experiment's training runs are in the MLflow UI: on the tracking server itself,
    or (a local store) on ``automl ui``'s default address."""
    base = tracking_uri if tracking_uri.startswith(("http://", "https://")) else ui
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
