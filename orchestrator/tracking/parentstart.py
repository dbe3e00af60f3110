"""A search's MLflow parent run, started in a thread while the search's first trials start.

Importing MLflow and opening its store take the driver ~2.5 s of CPU, and the trials need
neither: they report to the driver, whose writer (``writer.TrialRunWriter``) queues what they
send until the parent run exists. So the search does its own set-up and submits its trials
first, and this thread, after any background imports of the driver (``orchestrator.warmup``),
imports MLflow, opens the store, starts the parent run and hands its ids to the writer. It
starts at the first step of Tune's loop (``trials.OnFirstReport`` with no delay): Ray is then
starting the trials' actors in the idle workers and the main thread mostly waits on it, so
MLflow's imports take the time that start-up leaves idle instead of holding the first trial
back (before, Tune's callback telemetry imported MLflow on the main thread first:
``tunehooks.count_callbacks_by_name``). If the parent run cannot be started, the writer drops
what it queued, the search stops its trials (``failed`` is what its stopper asks) and
``result()`` raises the error that stopped it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.errors import TrackingError
from orchestrator.warmup import join_background_imports

if TYPE_CHECKING:
    from orchestrator.tracking.runs import SearchTracker
    from orchestrator.tracking.writer import TrialRunWriter


class ParentRunStart:
    """Runs ``start`` (which returns the started SearchTracker) in a daemon thread from
    :meth:`begin`, then ``then`` (failures ignored)."""

    def __init__(
        self,
        start: Callable[[], SearchTracker],
        writer: TrialRunWriter,
        then: Callable[[], object] | None = None,
    ) -> None:
        self._start, self._writer, self._then = start, writer, then
        self._tracker: SearchTracker | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="automl-parent-run", daemon=True)
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Start the thread (once; ``result()`` starts it too)."""
        with self._lock:
            if self._thread.ident is None:
                self._thread.start()

    def _run(self) -> None:
        from orchestrator import gcpause

        try:
            join_background_imports()  # the same modules, never imported by two threads at once
            with gcpause.paused():  # MLflow's imports: no collection passes meanwhile
                tracker = self._start()
        except BaseException as err:  # handed to the caller by result()
            self._error = err
            self._writer.attach_failed(err)
        else:
            self._tracker = tracker
            self._writer.attach(tracker.ids)
            if self._then is not None:  # what the writer will want soon (a figure warm-up)
                with contextlib.suppress(Exception):
                    self._then()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def result(self) -> SearchTracker:
        """The started tracker, once it is; raises what stopped it."""
        self.begin()
        self._thread.join()
        if self._tracker is None:
            raise self._error or TrackingError("the search's MLflow run was not started")
        return self._tracker


def tracked_search(config, run, name, exp_dir, resume, expected, refit):
    """What a tracked search hands Ray Tune: ``(writer, parent, callbacks, stopper)``.

    The writer (the first callback, so that Tune's own loggers never see the trials' payload)
    writes the trials' child runs from the driver and queues them until the parent run, begun
    at the first step of Tune's loop (at once when resuming: Tune restores its callbacks from
    the experiment, without that one), exists; with a refit, MLflow's first-model work runs in the
    search's tail; the stopper ends the search if the parent run cannot be started.
    """
    from orchestrator.tracking.writer import TrialRunWriter
    from orchestrator.trials import OnFirstReport, StopIf, WhenTrialsRunOut

    search = config.search
    writer = TrialRunWriter(
        None,
        config,
        run.prepared.task,
        run.cleaning.to_dict(),
        reattach=resume or search.max_failures > 0,
    )
    parent = ParentRunStart(
        lambda: start_parent_run(config, name, run, exp_dir, resume),
        writer,
        then=_figure_warm_up if config.tracking.trial_figures != "none" else None,
    )
    callbacks: list = [writer]
    if resume:
        parent.begin()
    else:
        callbacks.append(OnFirstReport(parent.begin, within_s=0.0))  # Tune's first step
    if refit:  # on the core the search's tail leaves idle
        callbacks.append(WhenTrialsRunOut(expected, _prewarm_model_logging))
    return writer, parent, callbacks, StopIf(lambda: parent.failed, key=str(exp_dir))


def start_parent_run(config, name, run, exp_dir, resume) -> SearchTracker:
    """The search's MLflow parent run (in ParentRunStart's thread); returns its SearchTracker.

    MLFLOW_RUN_ID (set by ``mlflow run``) left the environment before Ray started, so that
    workers cannot inherit it and collapse every trial into one run; the tracker takes it back
    from orchestrator.raystart and makes that run the parent. A store that cannot be used
    raises TrackingError.
    """
    from orchestrator.tracking import SearchTracker, describe_dataset

    tracker = SearchTracker(config.tracking.tracking_uri, config.tracking.experiment or name)
    tracker.start(
        config,
        name,
        tags={
            "automl.family": run.prepared.family,
            "automl.task": run.prepared.task,
            "automl.ray_experiment": str(exp_dir),
        },
        params={"search.space": json.dumps(config.search.space)},
        dataset=describe_dataset(run),
        resume=resume,
        metric=config.search.metric,
        mode=config.search.mode,
    )
    return tracker


def _figure_warm_up() -> None:
    from orchestrator.plots import warm_up

    warm_up()


def _prewarm_model_logging() -> None:
    from orchestrator.tracking.registry import prewarm_model_logging

    prewarm_model_logging()
