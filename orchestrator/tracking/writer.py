"""The driver's writer of a search's trial runs, fed by the trials' reports as plain values.

Trials do not talk to MLflow (see ``orchestrator.trial``): each report carries the epochs since
the previous report and, in the last one, the cross-validation result. The Ray adapter's
``TrialEvents`` callback takes that payload out of Tune's result and hands it here with the
trial's id; one writer thread logs every child run with ``log_batch``, so neither the trials
nor Tune's event loop wait for the store. One writer also suits a cluster: workers need no
access to the tracking store. This module knows nothing of Ray.

Every record carries the time the driver got it: a run starts and ends when its trial did, and
its epoch metrics bear the time they were reported. While the store is away (an ``mlflow
server`` restarting) the writer's calls are retried with backoff (``tracking.resilient``);
records wait in memory, at most ``MAX_QUEUED``, then in a file (``tracking.journal``) that the
writer reads back once the store answers. If it stays away past ``tracking.retry_s`` the writer
stops calling it and every record left goes to that file (``offline``), for ``automl sync``.

Run ends follow Tune's view of the trial: its last report finishes the run (COMPLETED), a trial
the scheduler stopped ends FINISHED with ``automl.status=STOPPED``, a failed one FAILED with the
error, and one still open when the search ends (interrupted) KILLED.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.config import Config, apply_overrides
from orchestrator.tracking.journal import Journal
from orchestrator.tracking.keys import TAG_STATUS, is_better, metric_base
from orchestrator.tracking.resilient import DiskFull, StoreHealth, StoreUnreachable

if TYPE_CHECKING:
    from orchestrator.tracking.trialrun import TrialTracker

logger = logging.getLogger(__name__)

_CLOSE = object()


# how long a best-so-far trial must stay the best before its figures are drawn (a set of
# matplotlib figures costs the driver ~0.3 s of CPU: a search of short trials draws its final
# best's set when it ends, a long search its current best's within seconds of its end)
FIGURE_DELAY_S = 10.0
# records held in memory while the store is slow or away; later ones wait in the journal file
MAX_QUEUED = 1000


class TrialRunWriter:
    """Logs each trial's child run under the parent ``ids`` from the driver.

    ``ids`` are the tracking URI, experiment id and parent run id. The ``trial_*`` methods are
    called on Tune's event loop (through the Ray adapter's ``TrialEvents``) and only queue.
    ``reattach`` looks for a trial's run from an earlier attempt (a resumed search, a retried
    trial) before creating one. ``seconds`` is the writer's busy time in all and ``cpu_seconds``
    the CPU time its thread used meanwhile (benchmark B3: the wall time also holds waits for the
    store's disk, for the GIL and for a core); ``errors`` are the tracking failures, one line
    each; a failure ends that trial's run FAILED and never stops the search.

    With ``tracking.trial_figures: best`` a trial that is the best so far when it ends gets its
    figures once it has stayed the best for ``figure_delay_s`` (or when the search ends): one
    beaten before then by a trial ending soon after draws none, so a search of short trials
    draws a few sets instead of one per improvement, and a long one's best still shows its
    figures seconds after it ends.
    """

    figure_delay_s = FIGURE_DELAY_S

    def __init__(
        self,
        ids: tuple[str, str, str],
        base_config: Config,
        task: str,
        cleaning: dict[str, Any] | None = None,
        reattach: bool = False,
        journal: Journal | None = None,
        health: StoreHealth | None = None,
    ) -> None:
        self.ids = ids
        self.journal = journal
        self.health = health or StoreHealth(ids[0], base_config.tracking.retry_s)
        self.offline: StoreUnreachable | None = None  # the store gave out: records journaled
        self.disk_full: DiskFull | None = None  # the artifact location had no room left
        self._started: dict[str, tuple[dict[str, Any], float]] = {}  # overrides, start time
        self.base_config = base_config
        self.task = task
        self.cleaning = cleaning
        self.reattach = reattach
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.errors: list[str] = []
        self._trackers: dict[str, TrialTracker] = {}
        self._figures: dict[str, str] = {}  # trial id -> its tracking.trial_figures
        self._best: float | None = None  # the best finished trial's CV mean of the metric
        self._best_seeded = False  # (a resumed search's earlier trials count: _seed_best)
        # ``best`` figures not drawn yet: (trial id, its ended tracker, what draw_figures takes,
        # when they are due)
        self._pending_figures: tuple[str, TrialTracker, tuple, float] | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queued = self._handled = 0  # items put, and written (wait_written)
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- Tune's side (event loop)
    def _put(self, kind: str, trial_id: str, data: Any = None) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="automl-mlflow", daemon=True)
            self._thread.start()
        record = (kind, trial_id, data, time.time())
        # past MAX_QUEUED, kept in order in the journal: the writer reads it once it caught up
        if self.journal is not None and self.journal.spill(record, self._queue.qsize(), MAX_QUEUED):
            return
        with self._progress:
            self._queued += 1
        self._queue.put(record)

    def wait_written(self, timeout: float = 60.0) -> bool:
        """Wait until everything queued so far is written (figures drawn where due)."""
        with self._progress:
            target = self._queued
            return self._progress.wait_for(lambda: self._handled >= target, timeout)

    def trial_started(self, trial_id: str, overrides: dict[str, Any]) -> None:
        """A trial began, with its sampled point as dotted overrides."""
        self._put("start", trial_id, overrides)

    def trial_result(self, trial_id: str, payload: dict[str, Any]) -> None:
        """A report's tracking payload: ``epochs`` rows, and ``cv`` (+ ``class_names``) last."""
        self._put("result", trial_id, payload)

    def trial_completed(self, trial_id: str) -> None:
        self._put("complete", trial_id)

    def trial_failed(self, trial_id: str, error: str) -> None:
        self._put("error", trial_id, error)

    def close(self, reason: str = "the search ended before this trial did") -> None:
        """Write everything queued, then end any run still open KILLED (idempotent)."""
        if self._thread is not None:
            self._queue.put((_CLOSE, "", reason, time.time()))
            self._thread.join()
            self._thread = None

    def replay(self, records: list[tuple]) -> int:
        """Write ``records`` (a journal's) here, in this thread; the trials they name."""
        for record in records:
            self._write(*record)
            if self.offline is not None:
                break
        self._draw_pending_figures()
        return len({r[1] for r in records if r[1]})

    # ----------------------------------------------------------------- the writer thread
    def _drain(self) -> None:
        while True:
            try:
                record = self._queue.get(timeout=self._until_figures_due())
            except queue.Empty:  # the pending best's figures are due and nothing came since
                with self._busy():
                    self._draw_pending_figures()
                continue
            if record[0] is _CLOSE:  # what waits in the journal came before the close
                self._catch_up()
            with self._busy():
                self._write(*record)
            if record[0] is _CLOSE:
                return
            self._count_handled()
            if self._queue.empty():
                self._catch_up()

    def _catch_up(self) -> None:
        """Write the records that went to the journal while the queue was full (not once the
        store has given out: they stay there)."""
        if self.journal is None or self.offline is not None:
            return
        for record in self.journal.take():
            with self._busy():
                self._write(*record)

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """Count the block's wall and thread CPU time into ``seconds`` and ``cpu_seconds``."""
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.thread_time() - started_cpu

    def _write(self, kind: Any, trial_id: str, data: Any, at: float) -> None:
        """One record: a trial's event, or the close (every open run ends KILLED)."""
        if self.offline is not None:
            self._journal((kind, trial_id, data, at))
            return
        if kind is _CLOSE or kind == "close":
            try:
                for open_id, tracker in list(self._trackers.items()):
                    self._end_quietly(open_id, tracker, lambda t, r=data: t.kill(r, _ms(at)))
                    del self._trackers[open_id]
            except StoreUnreachable as err:
                self._go_offline(err, (kind, trial_id, data, at))
        else:
            try:
                self._handle(kind, trial_id, data, at)
            except StoreUnreachable as err:
                self._go_offline(err, (kind, trial_id, data, at))
            except Exception as err:  # tracking must never stop the search
                if isinstance(err, DiskFull) and self.disk_full is None:
                    self.disk_full = err  # the search ends with it once the trials are done
                line = self._record_error(trial_id, err)
                tracker = self._trackers.pop(trial_id, None)
                if tracker is not None:
                    self._end_quietly(trial_id, tracker, lambda t, e=line: t.fail(e))
        if kind is _CLOSE or (self._queue.empty() and self._until_figures_due() == 0):
            self._draw_pending_figures()

    def _record_error(self, trial_id: str, err: Exception, what: str = "") -> str:
        """One line in ``errors`` and the log for a tracking failure; returns the line."""
        line = f"trial {trial_id}: {what}{type(err).__name__}: {err}".splitlines()[0]
        self.errors.append(line)
        logger.warning("MLflow logging failed for %s", line)
        return line

    def _count_handled(self) -> None:
        with self._progress:
            self._handled += 1
            self._progress.notify_all()

    def _go_offline(self, err: StoreUnreachable, record: tuple) -> None:
        """The store gave out: what each open run has not written, and ``record``, go to the
        journal, and so does every later record."""
        self.offline = err
        logger.warning("%s; the records not written go to %s", err, self._journal_path())
        for trial_id, tracker in self._trackers.items():
            overrides, started = self._started.get(trial_id, ({}, time.time()))
            metrics = tracker.unwritten()
            self._journal(
                ("resume", trial_id, {"overrides": overrides, "metrics": metrics}, started)
            )
        self._trackers.clear()
        self._pending_figures = None
        self._journal(record)

    def _journal(self, record: tuple) -> None:
        kind, trial_id, data, at = record
        if self.journal is not None:
            self.journal.append(("close" if kind is _CLOSE else kind, trial_id, data, at))

    def _journal_path(self) -> str:
        return str(self.journal.path) if self.journal is not None else "nowhere (no journal)"

    def _end_quietly(self, trial_id: str, tracker: TrialTracker, end) -> None:
        try:
            end(tracker)
        except StoreUnreachable:
            raise
        except Exception as err:
            self.errors.append(f"trial {trial_id}: ending its run: {type(err).__name__}: {err}")

    def _handle(self, kind: str, trial_id: str, data: Any, at: float) -> None:
        tracker = self._trackers.get(trial_id)
        if kind in ("start", "resume"):
            if tracker is None:  # a retried trial goes on in the run it has
                overrides = data if kind == "start" else data["overrides"]
                self._start_run(trial_id, overrides, at, reattach=kind == "resume")
            if kind == "resume":
                self._trackers[trial_id].log_metrics(data["metrics"])
        elif tracker is None:
            return  # its start failed (already recorded) or its run has ended
        elif kind == "result":
            for step, metrics in data.get("epochs", ()):
                tracker.log_epoch(metrics, step, _ms(at))
            if data.get("cv") is not None:
                self._finish_run(trial_id, tracker, data, at)
        elif kind == "complete":  # ended without its final report: the scheduler stopped it
            tracker.stopped_early(_ms(at))
            del self._trackers[trial_id]
        elif kind == "error":
            tracker.fail(data, _ms(at))
            del self._trackers[trial_id]

    def _start_run(self, trial_id: str, overrides: dict, at: float, reattach: bool) -> None:
        from orchestrator.tracking.trialrun import TrialTracker  # MLflow, in this thread

        config = apply_overrides(self.base_config, overrides)
        tracker = TrialTracker(*self.ids, reattach=self.reattach or reattach, health=self.health)
        # a conditional space's keys that other families search are not this trial's
        by_family = self.base_config.search.space_by_family
        inactive = {k for own in by_family.values() for k in own} - set(overrides)
        tracker.start(trial_id, config, omit=inactive, start_ms=_ms(at))
        self._trackers[trial_id] = tracker
        self._started[trial_id] = (overrides, at)
        self._figures[trial_id] = config.tracking.trial_figures

    def _finish_run(self, trial_id: str, tracker: TrialTracker, data: dict, at: float) -> None:
        """The trial's last report: its CV summary, tables and (maybe) figures; the run ends."""
        figures = self._draws_figures(trial_id, data["cv"])
        metric = self.base_config.search.metric
        # ``best``: drawn once it has stayed the best for figure_delay_s (or the search ends),
        # so that a trial beaten before then costs no figures (_drain)
        deferred = figures and self._figures.get(trial_id) == "best"
        tracker.finish(
            data["cv"],
            self.task,
            data.get("class_names"),
            self.cleaning,
            metric,
            figures=figures and not deferred,
            end_ms=_ms(at),
        )
        del self._trackers[trial_id]
        if deferred:
            args = (data["cv"], self.task, data.get("class_names"), metric)
            due = time.monotonic() + self.figure_delay_s
            self._pending_figures = (trial_id, tracker, args, due)

    def _until_figures_due(self) -> float | None:
        """Seconds until the pending best's figures are due; None when none are pending."""
        if self._pending_figures is None:
            return None
        return max(0.0, self._pending_figures[3] - time.monotonic())

    def _draw_pending_figures(self) -> None:
        pending, self._pending_figures = self._pending_figures, None
        if pending is None:
            return
        trial_id, tracker, args, _ = pending
        try:
            tracker.draw_figures(*args)
        except Exception as err:  # tracking must never stop the search
            self._record_error(trial_id, err, "figures: ")

    def _draws_figures(self, trial_id: str, cv) -> bool:
        """Whether a finished trial gets PNG figures: always, never, or (``best``) when its CV
        mean of the search's metric beats every trial that finished before it."""
        wanted = self._figures.get(trial_id, "all")
        if wanted != "best":
            return wanted == "all"
        search = self.base_config.search
        if not self._best_seeded:
            self._best_seeded = True
            self._best = self._seed_best()
        value = (cv.summary().get(metric_base(search.metric or "")) or {}).get("mean")
        if not is_better(value, self._best, search.mode or "max"):
            return False
        self._best = float(value)
        return True

    def _seed_best(self) -> float | None:
        """For a resumed (or retried) search, the best CV mean among the trial runs that
        finished under the parent before, so that ``best`` figures go only to trials that beat
        those too; None for a new search or where the store cannot say."""
        if not self.reattach:
            return None
        from mlflow import MlflowClient

        tracking_uri, experiment_id, parent_run_id = self.ids
        search = self.base_config.search
        key = f"cv_{metric_base(search.metric or '')}_mean"
        order = "DESC" if (search.mode or "max") == "max" else "ASC"
        try:
            runs = MlflowClient(tracking_uri).search_runs(
                [experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' "
                f"and tags.`{TAG_STATUS}` = 'COMPLETED'",
                order_by=[f"metrics.`{key}` {order}"],
                max_results=1,
            )
        except Exception as err:
            logger.warning("could not read the resumed search's best trial: %s", err)
            return None
        value = runs[0].data.metrics.get(key) if runs else None
        return float(value) if is_better(value, None, search.mode or "max") else None


def _ms(at: float) -> int:
    """Seconds since the epoch as MLflow's milliseconds."""
    return int(at * 1000)
