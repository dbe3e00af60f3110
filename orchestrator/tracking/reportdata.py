"""One search read back from the store for its report (``orchestrator.searchreport``): the
parent run, its trials, the best trial's per-epoch metrics and out-of-fold confusion matrix, and
the final model's test metrics and error analysis, all as plain values."""

from __future__ import annotations

import csv
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.errors import TrackingError
from orchestrator.tracking.keys import (
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    default_mode,
    is_better,
    metric_base,
)
from orchestrator.tracking.readback import search_all
from orchestrator.tracking.stores import local_artifact_dir, resolve_tracking_uri

TAG_OBJECTIVES = "automl.objectives"  # JSON [[metric, mode], [metric, mode]] on the parent
TAG_PARETO = "pareto"  # "true" / "false" on each trial of a two-objective search
CONFUSION_ARTIFACT = "confusion_matrix.csv"  # a trial's out-of-fold confusion matrix
ERRORS_ARTIFACT = "test_error_analysis.csv"  # the final model's worst test predictions
# the parent's parameters that describe the searched keys (dotted key -> distribution)
SPACE_PARAMS = ("search.space", "search.space_by_family")


@dataclass(frozen=True)
class Table:
    """A small CSV artifact: its header and rows, as text."""

    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class TrialRecord:
    """One trial's child run. ``params`` are its searched keys as logged (text); ``value`` and
    ``std`` its cross-validated metric; ``objectives`` the value of each objective of a
    two-objective search (else empty); times in ms since the epoch."""

    run_id: str
    name: str
    trial_id: str | None
    status: str  # automl.status (COMPLETED, STOPPED, FAILED, KILLED, RUNNING), else MLflow's
    params: dict[str, str]
    value: float | None
    std: float | None
    objectives: list[float | None]
    epochs: int | None
    start_time: int | None
    end_time: int | None
    pareto: bool | None

    @property
    def duration_s(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time) / 1000.0


@dataclass
class ReportData:
    """What the search report shows, read by :func:`load_report_data`."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    search: str
    status: str
    tags: dict[str, str]  # the parent's automl.* tags
    metric: str
    mode: str
    objectives: list[tuple[str, str]]  # two (metric, mode) pairs, or empty
    space: dict[str, Any]  # dotted key -> its distribution spec ({"loguniform": [a, b]})
    searched: list[str]  # the trials' searched keys, in the space's order
    trials: list[TrialRecord]  # by end time
    best: TrialRecord | None = None
    best_history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best_confusion: Table | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    test_errors: Table | None = None


def load_report_data(
    tracking_uri: str | None, experiment: str, parent_run_id: str | None = None
) -> ReportData:
    """The search ``parent_run_id`` (default: the experiment's latest search) and its trials.

    An unknown experiment, or one without a search run, raises :class:`TrackingError`.
    """
    uri = resolve_tracking_uri(tracking_uri)
    try:
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
    except Exception as err:  # a store that cannot be read: one line, as the CLI shows errors
        cause = (str(err).strip().splitlines() or [""])[0][:300]
        raise TrackingError(
            f"the tracking store {uri!r} could not be read ({type(err).__name__}: {cause})"
        ) from err
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise TrackingError(
            f"no experiment named '{experiment}' in {uri}; known: {', '.join(names) or '-'}"
        )
    parent = _parent_run(client, found.experiment_id, experiment, parent_run_id)
    children = search_all(
        client, [found.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'"
    )
    data = _describe_parent(uri, experiment, parent)
    trial_runs = [r for r in children if r.data.tags.get(TAG_ROLE) == "trial"]
    data.searched = _searched_keys(data.space, [r.data.params for r in trial_runs])
    data.trials = [_trial_record(client, run, data) for run in trial_runs]
    data.trials.sort(key=lambda t: (t.end_time or math.inf, t.start_time or 0))
    data.best = _best_trial(data.trials, data.mode)
    if data.best is not None:
        best_run = next(r for r in trial_runs if r.info.run_id == data.best.run_id)
        data.best_history = _epoch_history(client, best_run)
        data.best_confusion = _read_table(client, best_run, CONFUSION_ARTIFACT)
    refits = [r for r in children if r.data.tags.get(TAG_ROLE) == "refit"]
    refit = max(
        refits, key=lambda r: r.info.start_time or 0, default=None
    )  # a resumed search's last
    _read_test_results(client, data, parent, refit)
    return data


def _parent_run(client: MlflowClient, experiment_id: str, experiment: str, run_id: str | None):
    if run_id is not None:
        try:
            run = client.get_run(run_id)
        except Exception as err:
            raise TrackingError(f"no run '{run_id}' in the tracking store: {err}") from err
        if run.info.experiment_id != experiment_id:
            raise TrackingError(f"run '{run_id}' is not in experiment '{experiment}'")
        return run
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{TAG_ROLE}` = 'search'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not runs:
        raise TrackingError(f"experiment '{experiment}' has no search run to report on")
    return runs[0]


def _describe_parent(uri: str, experiment: str, parent: Any) -> ReportData:
    tags, params = parent.data.tags, parent.data.params
    metric = tags.get(TAG_METRIC) or params.get("search.metric") or "val_accuracy"
    mode = tags.get(TAG_MODE) or default_mode(metric)
    return ReportData(
        tracking_uri=uri,
        experiment=experiment,
        experiment_id=parent.info.experiment_id,
        parent_run_id=parent.info.run_id,
        search=tags.get(TAG_SEARCH) or parent.info.run_name,
        status=tags.get(TAG_STATUS) or parent.info.status,
        tags={k: v for k, v in tags.items() if k.startswith("automl.")},
        metric=metric,
        mode=mode,
        objectives=_objectives(tags.get(TAG_OBJECTIVES)),
        space=_space(params),
        searched=[],
        trials=[],
    )


def _objectives(text: str | None) -> list[tuple[str, str]]:
    """``automl.objectives`` as (metric, mode) pairs; empty unless it names two."""
    try:
        pairs = [(str(m), str(d)) for m, d in json.loads(text or "[]")]
    except (ValueError, TypeError):
        return []
    return pairs if len(pairs) == 2 else []


def _space(params: dict[str, str]) -> dict[str, Any]:
    """Every searched key's distribution, from the parent's ``search.space`` (and, per family,
    ``search.space_by_family``) parameters; what cannot be read is left out."""
    out: dict[str, Any] = {}
    for name in SPACE_PARAMS:
        try:
            value = json.loads(params.get(name) or "{}")
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        if name == "search.space":
            out.update(value)
        else:  # family -> {key: spec}
            for spec in value.values():
                out.update(spec if isinstance(spec, dict) else {})
    return out


def _searched_keys(space: dict[str, Any], trial_params: list[dict[str, str]]) -> list[str]:
    """The keys of the space the trials logged, then any other key whose value differs between
    trials (a space this version cannot read), in the space's order."""
    logged = {k for params in trial_params for k in params}
    varying = {k for k in logged if len({p.get(k) for p in trial_params}) > 1}
    keys = [k for k in space if k in logged]
    return keys + sorted(varying - set(keys))


def _score(metrics: dict[str, float], name: str) -> float | None:
    """A trial's final value of ``name``: ``cv_<name>_mean``, else the metric itself."""
    value = metrics.get(f"cv_{metric_base(name)}_mean", metrics.get(name))
    return None if value is None or not math.isfinite(value) else float(value)


def _trial_record(client: MlflowClient, run: Any, data: ReportData) -> TrialRecord:
    tags, metrics = run.data.tags, run.data.metrics
    std = metrics.get(f"cv_{metric_base(data.metric)}_std")
    pareto = tags.get(TAG_PARETO)
    steps = {m.step for m in client.get_metric_history(run.info.run_id, data.metric)}
    return TrialRecord(
        run_id=run.info.run_id,
        name=run.info.run_name,
        trial_id=tags.get(TAG_TRIAL),
        status=tags.get(TAG_STATUS) or run.info.status,
        params={k: run.data.params[k] for k in data.searched if k in run.data.params},
        value=_score(metrics, data.metric),
        std=None if std is None or not math.isfinite(std) else float(std),
        objectives=[_score(metrics, name) for name, _ in data.objectives],
        epochs=len(steps) or None,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        pareto=None if pareto is None else pareto.lower() == "true",
    )


def _best_trial(trials: list[TrialRecord], mode: str) -> TrialRecord | None:
    best = None
    for trial in trials:
        if trial.status in ("COMPLETED", "FINISHED") and is_better(
            trial.value, None if best is None else best.value, mode
        ):
            best = trial
    return best


def _epoch_history(client: MlflowClient, run: Any) -> dict[str, list[tuple[int, float]]]:
    """Each per-epoch metric of the run (not the CV summary's ``cv_*``/``fold*`` values) as
    ``(epoch, value)`` pairs."""
    run_id = run.info.run_id
    names = [
        k for k in sorted(run.data.metrics) if not k.startswith(("cv_", "fold", "refit_epochs"))
    ]
    history = {}
    for name in names:
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        history[name] = [(int(s), float(v)) for s, v in points]
    return history


def _read_table(client: MlflowClient, run: Any, path: str) -> Table | None:
    """A CSV artifact of the run, or None where the run has none; read in place where the
    store keeps artifacts on this machine."""
    local = local_artifact_dir(run.info.artifact_uri)
    if local is not None:
        return _csv_table(local / path) if (local / path).is_file() else None
    if path not in {a.path for a in client.list_artifacts(run.info.run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return _csv_table(Path(client.download_artifacts(run.info.run_id, path, tmp)))


def _csv_table(file: Path) -> Table | None:
    with file.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return Table(rows[0], rows[1:]) if rows else None


def _read_test_results(client: MlflowClient, data: ReportData, parent: Any, refit: Any) -> None:
    """The test metrics and error analysis: the parent run's, else its refit run's."""
    for run in (parent, refit):
        if run is None:
            continue
        if not data.test_metrics:
            data.test_metrics = {
                k: float(v) for k, v in sorted(run.data.metrics.items()) if k.startswith("test_")
            }
        if data.test_errors is None:
            data.test_errors = _read_table(client, run, ERRORS_ARTIFACT)
