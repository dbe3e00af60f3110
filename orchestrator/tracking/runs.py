"""The runs of a search: the driver's parent run and one child run per trial."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.errors import AutoMLError
from orchestrator.raystart import take_outer_run_id
from orchestrator.tracking.artifacts import cv_metrics, write_cv_artifacts
from orchestrator.tracking.sqlbatch import create_run, log_batch
from orchestrator.tracking.stores import (
    DEFAULT_EXPERIMENT,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    TAG_ERROR,
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    _is_number,
    _log_dataset,
    artifact_folder,
    config_dict,
    default_mode,
    get_or_create_experiment,
    git_commit,
    log_metrics,
    log_params,
    one_line,
    param_items,
    resolve_tracking_uri,
    set_tags,
)

if TYPE_CHECKING:
    from orchestrator.config import Config
    from orchestrator.crossval import CVResult

FLUSH_SECONDS = 10.0


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
        outer = take_outer_run_id()  # out of the environment: workers must not inherit it
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

    def close_open_trials(self, outcome: dict[str, tuple[str, str | None]]) -> int:
        """End trial runs that a worker left RUNNING (Ray may stop a trial thread mid-log).

        ``outcome`` maps trial id to Tune's view: ``(status, error)`` with status TERMINATED,
        STOPPED or ERROR. Returns how many runs were closed.
        """
        open_runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' "
            f"and attributes.status = 'RUNNING'",
        )
        closed = 0
        for run in open_runs:
            trial_id = run.data.tags.get(TAG_TRIAL)
            if trial_id is None:
                continue
            status, error = outcome.get(trial_id, ("KILLED", "the trial never reported back"))
            label = {"TERMINATED": "COMPLETED", "STOPPED": "STOPPED"}.get(status, status)
            tags = {TAG_STATUS: label}
            if error:
                tags[TAG_ERROR] = one_line(error, 1000)
            set_tags(self.client, run.info.run_id, tags)
            mlflow_status = (
                "FAILED" if status == "ERROR" else ("KILLED" if status == "KILLED" else "FINISHED")
            )
            self.client.set_terminated(run.info.run_id, mlflow_status)
            closed += 1
        return closed

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
    """A trial's child run: written by the search's driver (``tracking.writer``) or by
    ``automl train``, from plain strings (tracking URI, experiment id, parent run id).

    As a context manager it ends the run FAILED on an exception, FINISHED with
    ``automl.status=STOPPED`` on ``SystemExit`` and KILLED on ``KeyboardInterrupt``.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        flush_seconds: float = FLUSH_SECONDS,
        reattach: bool = True,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.flush_seconds = flush_seconds
        # look for this trial's run from an earlier attempt (a resumed search, a retried trial);
        # a fresh search knows there is none and saves the query
        self.reattach = reattach
        self.client = MlflowClient(tracking_uri)
        self.run_id: str | None = None
        self.artifact_uri: str | None = None
        self._buffer: list[Metric] = []
        self._buffer_since = 0.0
        self._ended = False
        self._config: dict[str, Any] | None = None
        self.seconds = 0.0  # spent in this tracker's MLflow calls (benchmark B3)

    def start(
        self, trial_id: str, params: Config | dict[str, Any], tags: dict[str, Any] | None = None
    ) -> str:
        """Create the child run, or re-attach to this trial's run when a search is resumed.

        ``params`` is the trial's Config (its flat dotted keys become parameters and the whole
        config ``config.json``) or a dict of parameters.
        """
        started = time.perf_counter()
        client = self.client
        existing = []
        if self.reattach:
            existing = client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' "
                f"and tags.`{TAG_TRIAL}` = '{trial_id}'",
                max_results=1,
            )
        run_tags = {TAG_STATUS: "RUNNING", **(tags or {})}
        if hasattr(params, "flat"):
            flat, self._config = params.flat(), config_dict(params)
        else:
            flat, self._config = dict(params), dict(params)
        if existing:
            self.run_id, logged = existing[0].info.run_id, existing[0].data.params
            self.artifact_uri = existing[0].info.artifact_uri
            client.update_run(self.run_id, status="RUNNING")
            set_tags(client, self.run_id, run_tags)
            log_params(client, self.run_id, flat, skip=logged)
        else:
            items = param_items(flat)
            first = items if len(items) <= PARAMS_PER_BATCH else []
            # the run, its tags and (up to a batch of) its parameters in one transaction
            self.run_id, self.artifact_uri = create_run(
                client,
                self.experiment_id,
                str(trial_id),
                {
                    MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                    TAG_TRIAL: str(trial_id),
                    TAG_ROLE: "trial",
                    **{k: one_line(v) for k, v in run_tags.items() if v is not None},
                },
                first,
            )
            if not first:
                log_params(client, self.run_id, flat)
        self._ended = False
        self.seconds += time.perf_counter() - started
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

    def flush(self, tags: dict[str, Any] | None = None, end_status: str | None = None) -> None:
        """Write the buffered metrics (and ``tags``) in as few ``log_batch`` calls as possible;
        ``end_status`` then ends the run (with the last batch, in its transaction)."""
        started = time.perf_counter()
        buffer, self._buffer = self._buffer, []
        run_tags = [RunTag(str(k), one_line(v)) for k, v in (tags or {}).items() if v is not None]
        if (not buffer and not run_tags and not end_status) or self.run_id is None:
            return
        last = max(len(buffer) - 1, 0) // METRICS_PER_BATCH * METRICS_PER_BATCH
        for i in range(0, last + 1, METRICS_PER_BATCH):
            log_batch(
                self.client,
                self.run_id,
                metrics=buffer[i : i + METRICS_PER_BATCH],
                tags=run_tags if i == 0 else [],
                end_status=end_status if i == last else None,
            )
        self.seconds += time.perf_counter() - started

    # ----------------------------------------------------------------- endings
    def finish(
        self,
        cv: CVResult,
        task: str,
        class_names: list[str] | None = None,
        cleaning: Any = None,
        metric: str | None = None,
        figures: bool = True,
    ) -> None:
        """Final CV metrics and the trial's figures and tables; ends the run FINISHED."""
        if self._ended or self.run_id is None:
            return
        started = time.perf_counter()
        try:
            # one batch: every buffered epoch, the CV summary and the final status tag. The last
            # epoch's metrics (as reported to Tune) repeat the summary: logged once, at step 0.
            now = int(time.time() * 1000)
            summary = {k: float(v) for k, v in cv_metrics(cv).items() if _is_number(v)}
            self._buffer = [m for m in self._buffer if m.key not in summary]
            self._buffer.extend(Metric(k, v, now, 0) for k, v in summary.items())
            # artifacts first, so that the metrics, the status tag and the run's end share one
            # transaction; if the artifacts fail, fail() still writes the buffered metrics
            with artifact_folder(self.client, self.run_id, self.artifact_uri) as folder:
                write_cv_artifacts(folder, cv, task, class_names, cleaning, metric, figures)
                self._write_config(folder)
            self.flush(tags={TAG_STATUS: "COMPLETED"}, end_status="FINISHED")
        except BaseException as err:
            self.fail(f"logging the trial's results failed: {type(err).__name__}: {err}")
            raise
        self._ended = True
        self.seconds += time.perf_counter() - started

    def _write_config(self, folder: Path) -> None:
        if self._config is not None:
            (folder / "config.json").write_text(json.dumps(self._config, indent=2, default=str))

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
            tags = {TAG_STATUS: label}
            if error:
                tags[TAG_ERROR] = one_line(error, 1000)
            try:
                self.flush(tags=tags)
            except Exception:
                set_tags(self.client, self.run_id, tags)
            with (
                contextlib.suppress(Exception),
                artifact_folder(self.client, self.run_id, self.artifact_uri) as folder,
            ):
                self._write_config(folder)
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
