"""Every MLflow tracking call: the search's parent run, one child run per trial, the refit run.

The driver owns every run: the parent (:class:`SearchTracker`), the refit run (:func:`log_refit`)
and, through one writer thread fed by the trials' Tune reports (``writer.TrialRunWriter``), each
trial's child run (:class:`TrialTracker`). Ray workers never import MLflow. Runs always end,
FAILED or KILLED when something goes wrong; metrics are buffered and written with ``log_batch``.

Modules, by noun: ``stores`` (URI, experiments, params/tags/metrics, datasets), ``runs`` (the
search and trial runs), ``writer`` (the trial runs of a search, from the driver), ``artifacts`` (a
trial's CV figures and tables), ``registry`` (the refit run and the champion alias) and
``readback`` (listing searches, picking the best trial).
"""

from orchestrator.errors import AutoMLError
from orchestrator.tracking.artifacts import (
    confusion_frame,
    cv_metrics,
    write_confusion,
    write_cv_artifacts,
)
from orchestrator.tracking.readback import best_run, list_searches, trial_score
from orchestrator.tracking.registry import (
    CHAMPION,
    log_refit,
    prewarm_model_logging,
    registered_model_name,
)
from orchestrator.tracking.runs import SearchTracker
from orchestrator.tracking.stores import (
    DEFAULT_EXPERIMENT,
    LOWER_IS_BETTER,
    MAX_PARAM_LENGTH,
    MAX_TAG_LENGTH,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    TAG_ERROR,
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    TRUNCATED,
    artifact_location,
    config_dict,
    dataset_digest,
    default_mode,
    describe_dataset,
    get_or_create_experiment,
    git_commit,
    is_better,
    log_metrics,
    log_params,
    metric_base,
    one_line,
    param_value,
    resolve_tracking_uri,
    set_tags,
    use_tracking_uri,
)
from orchestrator.tracking.trialrun import FLUSH_SECONDS, TrialTracker

__all__ = [
    "CHAMPION",
    "DEFAULT_EXPERIMENT",
    "FLUSH_SECONDS",
    "LOWER_IS_BETTER",
    "MAX_PARAM_LENGTH",
    "MAX_TAG_LENGTH",
    "METRICS_PER_BATCH",
    "PARAMS_PER_BATCH",
    "TAG_ERROR",
    "TAG_METRIC",
    "TAG_MODE",
    "TAG_ROLE",
    "TAG_SEARCH",
    "TAG_STATUS",
    "TAG_TRIAL",
    "TRUNCATED",
    "AutoMLError",
    "SearchTracker",
    "TrialTracker",
    "artifact_location",
    "best_run",
    "config_dict",
    "confusion_frame",
    "cv_metrics",
    "dataset_digest",
    "default_mode",
    "describe_dataset",
    "get_or_create_experiment",
    "git_commit",
    "is_better",
    "list_searches",
    "log_metrics",
    "log_params",
    "log_refit",
    "prewarm_model_logging",
    "metric_base",
    "one_line",
    "param_value",
    "registered_model_name",
    "resolve_tracking_uri",
    "set_tags",
    "trial_score",
    "use_tracking_uri",
    "write_confusion",
    "write_cv_artifacts",
]
