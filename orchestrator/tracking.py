"""Every MLflow tracking call: the search's parent run, one child run per trial, the refit run.

The driver owns the parent (:class:`SearchTracker`) and the refit run (:func:`log_refit`); each Ray
worker builds a :class:`TrialTracker` from plain strings (tracking URI, experiment id, parent run
id) and logs its own child run, so per-trial figures are made where the data is. Runs always end,
FAILED or KILLED when something goes wrong; metrics are buffered and written with ``log_batch``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID

from orchestrator.errors import AutoMLError

if TYPE_CHECKING:
    from orchestrator.config import Config
    from orchestrator.crossval import CVResult
    from orchestrator.pipeline import RefitResult

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
MAX_TAG_LENGTH = 5000
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
FLUSH_SECONDS = 10.0
TRUNCATED = "...[truncated]"
CHAMPION = "champion"
DEFAULT_EXPERIMENT = "automl"
LOWER_IS_BETTER = {"loss", "log_loss", "mse", "rmse", "mae"}

TAG_ROLE = "automl.role"  # search | trial | refit
TAG_SEARCH = "automl.search"
TAG_TRIAL = "automl.trial_id"
TAG_METRIC = "automl.metric"
TAG_MODE = "automl.mode"
TAG_STATUS = "automl.status"
TAG_ERROR = "automl.error"


# --------------------------------------------------------------------------- store location
def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``; absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        return (
            uri
            if path.startswith("/") or path == ":memory:"
            else f"sqlite:///{Path(path).resolve()}"
        )
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        return Path(uri).resolve().as_uri()  # a bare directory: the file store
    return uri


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``<store dir>/mlartifacts/<experiment>`` for a local SQLite store, else None (server's)."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.endswith(":memory:"):
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "default"
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.parent / "mlartifacts" / folder).as_uri()


@contextlib.contextmanager
def use_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (model logging, registry) at ``uri`` for a while."""
    from mlflow.tracking._tracking_service import utils as service

    old_uri = getattr(service, "_tracking_uri", None)
    old_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_uri)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def get_or_create_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location(tracking_uri, name))
        except MlflowException:  # created concurrently by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


# --------------------------------------------------------------------------- small helpers
def param_value(value: Any) -> str:
    """A parameter as text, cut to MLflow's limit (the full config is kept as config.json)."""
    text = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - len(TRUNCATED)] + TRUNCATED
    return text


def one_line(text: str, limit: int = MAX_TAG_LENGTH) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - len(TRUNCATED)] + TRUNCATED


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
    if new is None or not np.isfinite(new):
        return False
    if old is None or not np.isfinite(old):
        return True
    return new > old if mode == "max" else new < old


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any], skip=()) -> None:
    items = [Param(str(k), param_value(v)) for k, v in params.items() if k not in skip]
    for i in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[i : i + PARAMS_PER_BATCH])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _is_number(v)]
    for i in range(0, len(items), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[i : i + METRICS_PER_BATCH])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, Any]) -> None:
    items = [RunTag(str(k), one_line(v)) for k, v in tags.items() if v is not None]
    for i in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=items[i : i + PARAMS_PER_BATCH])


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parents[1],
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def config_dict(config: Any) -> dict[str, Any]:
    return config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)


def dataset_digest(X: Any, y: Any = None) -> str:
    """A short content hash of features and target (stable across processes)."""
    import hashlib

    h = hashlib.sha256()
    for part in (X, y):
        if part is None:
            continue
        if isinstance(part, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
            h.update(",".join(map(str, part.columns)).encode())
        else:
            arr = np.asarray(part)
            if arr.dtype == object:
                h.update(
                    pd.util.hash_pandas_object(pd.Series(arr), index=False).to_numpy().tobytes()
                )
            else:
                h.update(np.ascontiguousarray(arr).tobytes())
            h.update(str(arr.shape).encode())
    return h.hexdigest()[:16]


def describe_dataset(run: Any, sample: int = 200) -> dict[str, Any]:
    """The ``dataset`` argument of :meth:`SearchTracker.start` for a ``PreparedRun``."""
    ds = run.prepared.dataset
    n = min(sample, ds.n_samples)
    if isinstance(ds.X, pd.DataFrame):
        data = ds.X.head(n).copy()
        data["target"] = np.asarray(ds.y)[:n]
        targets = "target"
    else:
        data = np.asarray(ds.X)[:n].reshape(n, -1)
        targets = None
    return {
        "name": Path(str(run.source).removeprefix("builtin:")).name or str(run.source),
        "source": str(run.source),
        "digest": dataset_digest(ds.X, ds.y),
        "data": data,
        "targets": targets,
        "context": "training",
        "n_samples": int(ds.n_samples),
    }


def _log_dataset(client: MlflowClient, run_id: str, dataset: dict[str, Any]) -> None:
    """``mlflow.log_input`` for an explicit run: a small sample with the full data's digest."""
    data = dataset.get("data")
    name, digest = str(dataset.get("name") or "dataset"), dataset.get("digest")
    source = str(dataset.get("source") or name)
    try:
        from mlflow.data.code_dataset_source import CodeDatasetSource

        src = CodeDatasetSource(tags={"source": source})
    except ImportError:  # pragma: no cover - older layouts
        src = None
    if isinstance(data, pd.DataFrame):
        ds = mlflow.data.from_pandas(
            data, source=src, targets=dataset.get("targets"), name=name, digest=digest
        )
    else:
        arr = np.zeros((0, 1), dtype=np.float32) if data is None else np.asarray(data)
        ds = mlflow.data.from_numpy(arr, source=src, name=name, digest=digest)
    context = str(dataset.get("context") or "training")
    client.log_inputs(
        run_id, [DatasetInput(ds._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])]
    )


# --------------------------------------------------------------------------- the search
class SearchTracker:
    """The driver's parent run of one search. Use as a context manager so that it always ends."""

    def __init__(self, tracking_uri: str | None = None, experiment_name: str = DEFAULT_EXPERIMENT):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self.client = MlflowClient(self.tracking_uri)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._ended = False

    def start(
        self,
        config: Config,
        name: str,
        tags: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        dataset: dict[str, Any] | None = None,
        resume: bool = False,
        metric: str | None = None,
        mode: str | None = None,
    ) -> str:
        """Create (or adopt, or re-attach to) the parent run and return its id."""
        client = self.client
        search = config.search
        metric = metric or search.metric
        mode = mode or search.mode or (default_mode(metric) if metric else None)
        outer = os.environ.pop("MLFLOW_RUN_ID", None)  # workers must not inherit it
        existing = {}
        if outer:  # launched by `mlflow run`: that run is the parent
            run = client.get_run(outer)
            self.experiment_id, self.parent_run_id = run.info.experiment_id, outer
            existing = run.data.params
        else:
            self.experiment_id = get_or_create_experiment(
                client, self.tracking_uri, self.experiment_name
            )
            found = self._find_parent(name) if resume else None
            if found is not None:
                self.parent_run_id, existing = found.info.run_id, found.data.params
                client.update_run(self.parent_run_id, status="RUNNING")
            else:
                run = client.create_run(self.experiment_id, run_name=name)
                self.parent_run_id = run.info.run_id
        self._ended = False
        all_tags = {
            TAG_ROLE: "search",
            TAG_SEARCH: name,
            "automl.algorithm": search.algorithm,
            "automl.scheduler": search.scheduler,
            "automl.family": config.model.family,
            "automl.data_source": config.data.source,
            TAG_METRIC: metric,
            TAG_MODE: mode,
            TAG_STATUS: "RUNNING",
        }
        commit = git_commit()
        if commit:
            all_tags.update({"mlflow.source.git.commit": commit, "automl.git_commit": commit})
        if dataset and dataset.get("digest"):
            all_tags["automl.dataset_digest"] = dataset["digest"]
        all_tags.update(tags or {})
        set_tags(client, self.parent_run_id, all_tags)
        search_params = {f"search.{k}": v for k, v in search.model_dump(mode="json").items()}
        search_params.update(params or {})
        log_params(client, self.parent_run_id, search_params, skip=existing)
        client.log_dict(self.parent_run_id, config_dict(config), "config.json")
        if dataset and not existing:
            _log_dataset(client, self.parent_run_id, dataset)
        return self.parent_run_id

    def _find_parent(self, name: str):
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_SEARCH}` = '{name}' and tags.`{TAG_ROLE}` = 'search'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    @property
    def ids(self) -> tuple[str, str, str]:
        """``(tracking_uri, experiment_id, parent_run_id)``: what a worker needs, as strings."""
        if self.parent_run_id is None:
            raise AutoMLError("SearchTracker.start() must be called before its ids are used")
        return self.tracking_uri, self.experiment_id, self.parent_run_id

    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        log_metrics(self.client, self.parent_run_id, metrics, step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        set_tags(self.client, self.parent_run_id, tags)

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        """End the parent run (idempotent); ``status`` is FINISHED, FAILED or KILLED."""
        if self._ended or self.parent_run_id is None:
            return
        self._ended = True
        tags = {TAG_STATUS: status}
        if error:
            tags[TAG_ERROR] = error
        try:
            set_tags(self.client, self.parent_run_id, tags)
        finally:
            self.client.set_terminated(self.parent_run_id, status)

    def __enter__(self) -> SearchTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.finish("KILLED", error=f"{exc_type.__name__}")
        else:
            self.finish("FAILED", error=f"{exc_type.__name__}: {exc}")
        return False


# --------------------------------------------------------------------------- one trial
class TrialTracker:
    """A trial's child run, logged from inside the Ray worker.

    Build it in the worker from plain strings. As a context manager it ends the run FAILED on an
    exception, FINISHED with ``automl.status=STOPPED`` on ``SystemExit`` (how Ray stops a
    function trainable inside ``tune.report``) and KILLED on ``KeyboardInterrupt``.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        flush_seconds: float = FLUSH_SECONDS,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.flush_seconds = flush_seconds
        self.client = MlflowClient(tracking_uri)
        self.run_id: str | None = None
        self._buffer: list[Metric] = []
        self._buffer_since = 0.0
        self._ended = False

    def start(
        self, trial_id: str, params: Config | dict[str, Any], tags: dict[str, Any] | None = None
    ) -> str:
        """Create the child run, or re-attach to this trial's run when a search is resumed.

        ``params`` is the trial's Config (its flat dotted keys become parameters and the whole
        config ``config.json``) or a dict of parameters.
        """
        client = self.client
        existing = client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' "
            f"and tags.`{TAG_TRIAL}` = '{trial_id}'",
            max_results=1,
        )
        logged: dict[str, str] = {}
        if existing:
            self.run_id, logged = existing[0].info.run_id, existing[0].data.params
            client.update_run(self.run_id, status="RUNNING")
        else:
            run = client.create_run(
                self.experiment_id,
                run_name=str(trial_id),
                tags={
                    MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                    TAG_TRIAL: str(trial_id),
                    TAG_ROLE: "trial",
                },
            )
            self.run_id = run.info.run_id
        self._ended = False
        if hasattr(params, "flat"):
            flat, full = params.flat(), config_dict(params)
        else:
            flat, full = dict(params), dict(params)
        set_tags(client, self.run_id, {TAG_STATUS: "RUNNING", **(tags or {})})
        log_params(client, self.run_id, flat, skip=logged)
        client.log_dict(self.run_id, full, "config.json")
        return self.run_id

    # ----------------------------------------------------------------- metrics
    def log_epoch(self, metrics: dict[str, Any], step: int) -> None:
        """Buffer one epoch's metrics; written in batches (on age, size, or :meth:`flush`)."""
        now = int(time.time() * 1000)
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.extend(
            Metric(k, float(v), now, int(step))
            for k, v in metrics.items()
            if k != "epoch" and _is_number(v)
        )
        if (
            len(self._buffer) >= METRICS_PER_BATCH
            or time.monotonic() - self._buffer_since >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        if not buffer or self.run_id is None:
            return
        for i in range(0, len(buffer), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=buffer[i : i + METRICS_PER_BATCH])

    # ----------------------------------------------------------------- endings
    def finish(
        self,
        cv: CVResult,
        task: str,
        class_names: list[str] | None = None,
        cleaning: Any = None,
        metric: str | None = None,
    ) -> None:
        """Final CV metrics and the trial's figures and tables; ends the run FINISHED."""
        if self._ended or self.run_id is None:
            return
        try:
            self.flush()
            log_metrics(self.client, self.run_id, cv_metrics(cv))
            with tempfile.TemporaryDirectory() as tmp:
                write_cv_artifacts(Path(tmp), cv, task, class_names, cleaning, metric)
                self.client.log_artifacts(self.run_id, tmp)
        except BaseException as err:
            self.fail(f"logging the trial's results failed: {type(err).__name__}: {err}")
            raise
        self._end("FINISHED", "COMPLETED")

    def fail(self, error: str) -> None:
        """Flush what is buffered, record the error as a tag and end the run FAILED."""
        self._end("FAILED", "FAILED", error)

    def stopped_early(self) -> None:
        """The scheduler stopped this trial: FINISHED, tagged ``automl.status=STOPPED``."""
        self._end("FINISHED", "STOPPED")

    def kill(self, reason: str = "interrupted") -> None:
        self._end("KILLED", "KILLED", reason)

    def _end(self, status: str, label: str, error: str | None = None) -> None:
        if self._ended or self.run_id is None:
            return
        self._ended = True
        try:
            with contextlib.suppress(Exception):
                self.flush()
            tags = {TAG_STATUS: label}
            if error:
                tags[TAG_ERROR] = one_line(error, 1000)
            set_tags(self.client, self.run_id, tags)
        finally:
            self.client.set_terminated(self.run_id, status)

    def __enter__(self) -> TrialTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self._end("FINISHED", "ENDED")
        elif issubclass(exc_type, SystemExit):
            self.stopped_early()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.kill()
        else:
            self.fail(f"{exc_type.__name__}: {exc}")
        return False


def cv_metrics(cv: CVResult) -> dict[str, float]:
    """``cv_NAME_mean``, ``cv_NAME_std`` and ``foldK_NAME`` for every metric, plus epochs."""
    out: dict[str, float] = {}
    for name, stats in cv.summary().items():
        out[f"cv_{name}_mean"] = float(stats["mean"])
        out[f"cv_{name}_std"] = float(stats["std"])
        for k, value in enumerate(stats["per_fold"], start=1):
            out[f"fold{k}_{name}"] = float(value)
    for k, epoch in enumerate(cv.best_epochs, start=1):
        out[f"fold{k}_best_epoch"] = float(epoch)
    out["refit_epochs"] = float(cv.refit_epochs)
    return out


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def confusion_frame(cm: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(cm, dtype=np.int64), index=class_names, columns=class_names)
    frame.index.name = "true"
    return frame


def write_confusion(folder: Path, cm: np.ndarray, class_names: list[str], stem: str) -> None:
    from orchestrator.plots import confusion_matrix_figure

    confusion_frame(cm, class_names).to_csv(folder / f"{stem}.csv")
    _save(confusion_matrix_figure(cm, class_names), folder / f"{stem}.png")


def write_cv_artifacts(
    folder: Path,
    cv: CVResult,
    task: str,
    class_names: list[str] | None,
    cleaning: Any = None,
    metric: str | None = None,
) -> None:
    """Out-of-fold confusion matrix, ROC, learning curves, error analysis, cleaning report."""
    from models import confusion_matrix, error_analysis
    from orchestrator.plots import learning_curves_figure, roc_curve_figure

    output, y = np.asarray(cv.oof_output), np.asarray(cv.oof_true)
    seen = ~np.isnan(output).any(axis=1) if output.ndim == 2 else ~np.isnan(output)
    output, y = output[seen], y[seen]  # rows that were in no validation fold (time series)
    names = None
    if task == "classification":
        k = output.shape[1]
        names = (
            [str(c) for c in class_names]
            if class_names and len(class_names) == k
            else [str(i) for i in range(k)]
        )
        write_confusion(
            folder, confusion_matrix(y, output.argmax(axis=1), k), names, "confusion_matrix"
        )
        _save(roc_curve_figure(y, output, names), folder / "roc_curve.png")
    metric = metric or ("val_accuracy" if task == "classification" else "val_r2")
    if cv.history:
        _save(learning_curves_figure(cv.history, metric), folder / "learning_curves.png")
    error_analysis(task, y, output, class_names=names).to_csv(
        folder / "error_analysis.csv", index=False
    )
    summary = {
        k: {"mean": v["mean"], "std": v["std"], "per_fold": v["per_fold"]}
        for k, v in cv.summary().items()
    }
    (folder / "cv_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if cleaning is not None:
        report = cleaning.to_dict() if hasattr(cleaning, "to_dict") else dict(cleaning)
        (folder / "cleaning_report.json").write_text(json.dumps(report, indent=2, default=str))


# --------------------------------------------------------------------------- refit and registry
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
    client = MlflowClient(uri)
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
    run_id = client.create_run(experiment_id, run_name="refit-best", tags=tags).info.run_id
    status = "FAILED"
    try:
        log_params(client, run_id, {**config.flat(), "refit.epochs": refit.epochs})
        log_metrics(client, run_id, test)
        client.log_dict(run_id, config_dict(config), "config.json")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
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
            client.log_artifacts(run_id, tmp)
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


# --------------------------------------------------------------------------- read-back
def _experiment_ids(client: MlflowClient, experiment: str | None) -> dict[str, str]:
    if experiment is None:
        return {e.experiment_id: e.name for e in client.search_experiments()}
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise AutoMLError(f"no experiment named '{experiment}'; known: {', '.join(names) or '-'}")
    return {found.experiment_id: found.name}


def _search_all(client: MlflowClient, ids: list[str], filter_string: str, order=None) -> list:
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
    parents = _search_all(
        client, ids, f"tags.`{TAG_ROLE}` = 'search'", ["attributes.start_time DESC"]
    )
    children: dict[str, list] = {}
    for run in _search_all(
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
