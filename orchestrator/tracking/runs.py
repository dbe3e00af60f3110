"""The driver's parent run of a search (each trial's child run: ``trialrun``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.errors import AutoMLError, TrackingError
from orchestrator.outer_run import take_outer_run_id
from orchestrator.tracking.resilient import ResilientClient, StoreHealth
from orchestrator.tracking.stores import (
    DEFAULT_EXPERIMENT,
    TAG_ERROR,
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    _log_dataset,
    config_dict,
    default_mode,
    get_or_create_experiment,
    git_commit,
    log_metrics,
    log_params,
    one_line,
    resolve_tracking_uri,
    set_tags,
    tracking_client,
)

if TYPE_CHECKING:
    from orchestrator.config import Config


def store_error(tracking_uri: str, err: Exception) -> TrackingError:
    """One line for a tracking store that cannot be used, naming it and the cause."""
    cause = (str(err).strip().splitlines() or [""])[0][:300]
    return TrackingError(
        f"the MLflow run could not be started in the tracking store {tracking_uri!r} "
        f"({type(err).__name__}: {cause}); check --tracking-uri, tracking.tracking_uri or "
        f"MLFLOW_TRACKING_URI"
    )


@contextlib.contextmanager
def store_setup_lock(uri: str) -> Iterator[None]:
    """For an SQLite store, one process at a time through the block: MLflow creates (and
    migrates) a new store's tables on first use, and two searches starting on one new file
    at once raced there ("Online migration expected to match one row")."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        yield
        return
    import fcntl

    path = Path(uri.removeprefix("sqlite:///") + ".automl-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the search
class SearchTracker:
    """The driver's parent run of one search. Use as a context manager so that it always ends."""

    def __init__(self, tracking_uri: str | None = None, experiment_name: str = DEFAULT_EXPERIMENT):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        try:
            with store_setup_lock(self.tracking_uri):  # MLflow sets up a new store here
                self.client = tracking_client(self.tracking_uri)
        except Exception as err:
            raise store_error(self.tracking_uri, err) from err
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
        start_ms: int | None = None,
    ) -> str:
        """Create (or adopt, or re-attach to) the parent run and return its id; ``start_ms``:
        when the search started (epoch milliseconds; now by default).

        A store that cannot be used raises :class:`TrackingError`, one line naming it.
        """
        try:
            with store_setup_lock(self.tracking_uri):
                return self._start(
                    config, name, tags, params, dataset, resume, metric, mode, start_ms
                )
        except AutoMLError:
            raise
        except Exception as err:
            raise store_error(self.tracking_uri, err) from err

    def _start(self, config, name, tags, params, dataset, resume, metric, mode, start_ms) -> str:
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
                run = client.create_run(self.experiment_id, run_name=name, start_time=start_ms)
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

    def tag_trials(self, tags: dict[str, dict[str, str]]) -> None:
        """Set ``tags[trial id]`` on each of those trials' runs (e.g. ``pareto``)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}'",
            max_results=10_000,
        )
        for run in runs:
            wanted = tags.get(run.data.tags.get(TAG_TRIAL, ""))
            if wanted:
                set_tags(self.client, run.info.run_id, wanted)

    def kill_stale_trials(self) -> int:
        """A resumed search's trial runs that its earlier driver left RUNNING (it was killed
        outright): ended KILLED, saying so; a trial Tune runs again reopens its run. Returns
        how many."""
        stale = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' "
            f"and attributes.status = 'RUNNING'",
            max_results=10_000,
        )
        for run in stale:
            tags = {TAG_STATUS: "KILLED", TAG_ERROR: "the search's driver died during this run"}
            set_tags(self.client, run.info.run_id, tags)
            self.client.set_terminated(run.info.run_id, "KILLED")
        return len(stale)

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

    def keep_trying(self, health: StoreHealth) -> None:
        """From now on, calls outlive an outage of the store (``tracking.resilient``)."""
        self.client = ResilientClient(self.client, health)

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
