"""A trial's child run: its parameters, buffered epoch metrics, CV results and end."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.tracking.artifacts import cv_metrics, write_cv_artifacts, write_cv_figures
from orchestrator.tracking.resilient import ResilientClient, StoreHealth, StoreUnreachable
from orchestrator.tracking.stores import (
    METRICS_PER_BATCH,
    TAG_ERROR,
    TAG_ROLE,
    TAG_STATUS,
    TAG_TRIAL,
    _is_number,
    artifact_folder,
    config_dict,
    log_batch,
    log_params,
    one_line,
    param_items,
    set_tags,
)

if TYPE_CHECKING:
    from orchestrator.config import Config
    from orchestrator.crossval import CVResult

FLUSH_SECONDS = 10.0


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
        health: StoreHealth | None = None,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.flush_seconds = flush_seconds
        # look for this trial's run from an earlier attempt (a resumed search, a retried trial);
        # a fresh search knows there is none and saves the query
        self.reattach = reattach
        # with ``health`` (a search's writer) calls outlive an outage of the store
        client = MlflowClient(tracking_uri)
        self.client = ResilientClient(client, health) if health is not None else client
        self.run_id: str | None = None
        self.artifact_uri: str | None = None
        self._buffer: list[Metric] = []
        self._buffer_since = 0.0
        self._ended = False
        self._config: dict[str, Any] | None = None
        self.seconds = 0.0  # spent in this tracker's MLflow calls (benchmark B3)

    def start(
        self,
        trial_id: str,
        params: Config | dict[str, Any],
        tags: dict[str, Any] | None = None,
        omit: set[str] | frozenset[str] = frozenset(),
        start_ms: int | None = None,
    ) -> str:
        """Create the child run, or re-attach to this trial's run when a search is resumed.

        ``params`` is the trial's Config (its flat dotted keys become parameters and the whole
        config ``config.json``) or a dict of parameters; the keys in ``omit`` are not logged
        (a conditional space's keys that other families search); ``start_ms``: when the
        trial started (epoch milliseconds; now by default).
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
        flat = {k: v for k, v in flat.items() if k not in omit}
        if existing:
            self.run_id, logged = existing[0].info.run_id, existing[0].data.params
            self.artifact_uri = existing[0].info.artifact_uri
            client.update_run(self.run_id, status="RUNNING")
            if TAG_ERROR in existing[0].data.tags:  # what ended the earlier attempt
                client.delete_tag(self.run_id, TAG_ERROR)
            set_tags(client, self.run_id, run_tags)
            log_params(client, self.run_id, flat, skip=logged)
        else:
            new_tags = {
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                TAG_TRIAL: str(trial_id),
                TAG_ROLE: "trial",
                **{k: one_line(v) for k, v in run_tags.items() if v is not None},
            }
            run = client.create_run(
                self.experiment_id, run_name=str(trial_id), tags=new_tags, start_time=start_ms
            )
            self.run_id, self.artifact_uri = run.info.run_id, run.info.artifact_uri
            log_batch(client, self.run_id, params=param_items(flat))
        self._ended = False
        self.seconds += time.perf_counter() - started
        return self.run_id

    # ----------------------------------------------------------------- metrics
    def log_epoch(self, metrics: dict[str, Any], step: int, at_ms: int | None = None) -> None:
        """Buffer one epoch's metrics; written in batches (on age, size, or :meth:`flush`).
        ``at_ms``: when they were recorded (a replayed record so writes the same rows)."""
        now = at_ms if at_ms is not None else int(time.time() * 1000)
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

    def unwritten(self) -> list[tuple[str, float, int, int]]:
        """The buffered metrics not written yet, as ``(key, value, timestamp, step)``."""
        return [(m.key, m.value, m.timestamp, m.step) for m in self._buffer]

    def log_metrics(self, rows: list[tuple[str, float, int, int]]) -> None:
        """Buffer metrics as :meth:`unwritten` gave them (their times kept)."""
        self._buffer.extend(Metric(k, float(v), int(t), int(s)) for k, v, t, s in rows)

    def flush(
        self,
        tags: dict[str, Any] | None = None,
        end_status: str | None = None,
        end_ms: int | None = None,
    ) -> None:
        """Write the buffered metrics (and ``tags``) in as few ``log_batch`` calls as possible;
        ``end_status`` (``FINISHED``, ``FAILED``, ``KILLED``) then ends the run, at ``end_ms``
        (now by default). Metrics not written stay buffered."""
        started = time.perf_counter()
        buffer, self._buffer = self._buffer, []
        run_tags = [RunTag(str(k), one_line(v)) for k, v in (tags or {}).items() if v is not None]
        if (not buffer and not run_tags and not end_status) or self.run_id is None:
            return
        try:
            log_batch(self.client, self.run_id, metrics=buffer, tags=run_tags)
        except BaseException:
            self._buffer = buffer + self._buffer
            raise
        if end_status is not None:
            self.client.set_terminated(self.run_id, end_status, end_time=end_ms)
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
        end_ms: int | None = None,
    ) -> None:
        """Final CV metrics and the trial's figures and tables; ends the run FINISHED (at
        ``end_ms``, when the trial ended)."""
        if self._ended or self.run_id is None:
            return
        started = time.perf_counter()
        try:
            # one batch: every buffered epoch, the CV summary and the final status tag. The last
            # epoch's metrics (as reported to Tune) repeat the summary: logged once, at step 0.
            now = end_ms if end_ms is not None else int(time.time() * 1000)
            summary = {k: float(v) for k, v in cv_metrics(cv).items() if _is_number(v)}
            self._buffer = [m for m in self._buffer if m.key not in summary]
            self._buffer.extend(Metric(k, v, now, 0) for k, v in summary.items())
            # artifacts first, so that the run ends with its metrics and status tag written;
            # if the artifacts fail, fail() still writes the buffered metrics
            with artifact_folder(self.client, self.run_id, self.artifact_uri) as folder:
                write_cv_artifacts(folder, cv, task, class_names, cleaning, metric, figures)
                self._write_config(folder)
            self.flush(tags={TAG_STATUS: "COMPLETED"}, end_status="FINISHED", end_ms=end_ms)
        except StoreUnreachable:
            raise
        except BaseException as err:
            self.fail(f"logging the trial's results failed: {type(err).__name__}: {err}")
            raise
        self._ended = True
        self.seconds += time.perf_counter() - started

    def draw_figures(
        self,
        cv: CVResult,
        task: str,
        class_names: list[str] | None = None,
        metric: str | None = None,
    ) -> None:
        """The trial's PNG figures, added to its run (also once the run has ended)."""
        if self.run_id is None:
            return
        started = time.perf_counter()
        with artifact_folder(self.client, self.run_id, self.artifact_uri) as folder:
            write_cv_figures(folder, cv, task, class_names, metric)
        self.seconds += time.perf_counter() - started

    def _write_config(self, folder: Path) -> None:
        if self._config is not None:
            (folder / "config.json").write_text(json.dumps(self._config, indent=2, default=str))

    def fail(self, error: str, end_ms: int | None = None) -> None:
        """Flush what is buffered, record the error as a tag and end the run FAILED."""
        self._end("FAILED", "FAILED", error, end_ms)

    def stopped_early(self, end_ms: int | None = None) -> None:
        """The scheduler stopped this trial: FINISHED, tagged ``automl.status=STOPPED``."""
        self._end("FINISHED", "STOPPED", end_ms=end_ms)

    def kill(self, reason: str = "interrupted", end_ms: int | None = None) -> None:
        self._end("KILLED", "KILLED", reason, end_ms)

    def _end(
        self, status: str, label: str, error: str | None = None, end_ms: int | None = None
    ) -> None:
        if self._ended or self.run_id is None:
            return
        self._ended = True
        try:
            tags = {TAG_STATUS: label}
            if error:
                tags[TAG_ERROR] = one_line(error, 1000)
            try:
                self.flush(tags=tags)
            except StoreUnreachable:
                self._ended = False
                raise
            except Exception:
                set_tags(self.client, self.run_id, tags)
            with (
                contextlib.suppress(Exception),
                artifact_folder(self.client, self.run_id, self.artifact_uri) as folder,
            ):
                self._write_config(folder)
        finally:
            if self._ended:
                self.client.set_terminated(self.run_id, status, end_time=end_ms)

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
