"""A search's MLflow side, on the driver: the parent run and the trials' writer at the start,
the trial runs closed and the parent run ended at the end, and what the search says when the
store gave out (its records are then in the journal, for ``automl sync``). MLflow is imported
only through ``orchestrator.tracking``, when tracking is on."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from orchestrator.config import Config
from orchestrator.errors import TrackingError
from orchestrator.tuner import objectives

if TYPE_CHECKING:
    from orchestrator.search import SearchPlan
    from orchestrator.searchresult import Budget
    from orchestrator.tracking import SearchTracker
    from orchestrator.tracking.writer import TrialRunWriter


UNSENT_FILE = "mlflow-unsent.pkl"  # in the search's folder: records the store did not take


def start_tracking(
    plan: SearchPlan, resume: bool, started_at: float | None = None
) -> tuple[SearchTracker, TrialRunWriter]:
    """The search's MLflow parent run (a new one, the ``mlflow run`` run, or a resumed
    search's; started at ``started_at``), and the writer of the trials' child runs under it;
    both keep trying through an outage of the store (``tracking.retry_s``)."""
    from orchestrator.tracking import SearchTracker, describe_dataset
    from orchestrator.tracking.journal import Journal
    from orchestrator.tracking.resilient import StoreHealth
    from orchestrator.tracking.writer import TrialRunWriter

    config, run = plan.config, plan.run
    tracker = SearchTracker(config.tracking.tracking_uri, config.tracking.experiment or plan.name)
    tracker.start(
        config,
        plan.name,
        tags={
            **objectives_tag(config),
            "automl.family": run.prepared.family,
            "automl.task": run.prepared.task,
            "automl.ray_experiment": str(plan.exp_dir),
        },
        params={
            "search.space": json.dumps(config.search.space),
            **family_spaces(config),
        },
        dataset=describe_dataset(run),
        resume=resume,
        metric=plan.metric,
        mode=plan.mode,
        start_ms=int(started_at * 1000) if started_at is not None else None,
    )
    if resume:
        tracker.kill_stale_trials()
    health = StoreHealth(tracker.tracking_uri, config.tracking.retry_s)
    tracker.keep_trying(health)
    header = {
        "ids": tracker.ids,
        "config": config.model_dump(mode="json"),
        "task": run.prepared.task,
        "cleaning": run.cleaning.to_dict(),
        "search": plan.name,
    }
    writer = TrialRunWriter(
        tracker.ids,
        config,
        run.prepared.task,
        run.cleaning.to_dict(),
        reattach=resume or config.search.max_failures > 0,
        journal=Journal(plan.exp_dir / UNSENT_FILE, header),
        health=health,
    )
    return tracker, writer


def store_gone(plan: SearchPlan, writer: TrialRunWriter) -> TrackingError:
    """The one line a search ends with when the store gave out: the trials' records are in
    the journal, for ``automl sync``; the search's folder keeps the trials for ``--resume``."""
    return TrackingError(
        f"{writer.offline}; the trials finished and their records are in {writer.journal.path}: "
        f"once the store answers, run automl sync {writer.journal.path}, then automl search "
        f"--resume {plan.name} for the final model"
    )


def end_parent(tracker: SearchTracker, writer: TrialRunWriter | None, status: str, error: str):
    """End the parent run; if the store is gone, the end goes to the journal instead."""
    from orchestrator.tracking.resilient import StoreUnreachable

    try:
        tracker.finish(status, error=error)
    except StoreUnreachable:
        if writer is not None and writer.journal is not None:
            record = ("parent", "", {"status": status, "error": error}, time.time())
            writer.journal.append(record)


def family_spaces(config: Config) -> dict[str, str]:
    by_family = config.search.space_by_family
    return {"search.space_by_family": json.dumps(by_family)} if by_family else {}


def objectives_tag(config: Config) -> dict[str, str]:
    """``automl.objectives``: the two objectives, ``[[metric, mode], ...]`` (the report's)."""
    goal = objectives(config)
    if not goal.multi:
        return {}
    return {
        "automl.objectives": json.dumps(
            [list(p) for p in zip(goal.metrics, goal.modes, strict=True)]
        )
    }


def runs_url(tracker: SearchTracker | None) -> str | None:
    if tracker is None or tracker.experiment_id is None:
        return None
    from orchestrator.tracking.keys import runs_view_url

    return runs_view_url(tracker.tracking_uri, tracker.experiment_id)


def close_trial_runs(
    tracker: SearchTracker, writer: TrialRunWriter, trials: list, budget: Budget
) -> None:
    """Trial runs left open end as Tune ended their trials; tracking failures are tagged; the
    parent run records the time the trials used against their budget."""
    tracker.close_open_trials({t.trial_id: (t.status, t.error) for t in trials})
    if writer.errors:
        tracker.set_tags({"automl.tracking_errors": "; ".join(writer.errors)})
    if budget.seconds is not None:
        tracker.log_metrics({"time_used_s": budget.used_s})
        tracker.set_tags({"automl.budget_exhausted": str(budget.spent).lower()})


def log_report(tracker: SearchTracker) -> None:
    """The search's HTML report (``automl report``), an artifact of its parent run; a report
    that cannot be drawn is a tag, never a failed search."""
    import tempfile
    from pathlib import Path

    from orchestrator.searchreport import write_report

    try:
        name = tracker.client.get_experiment(tracker.experiment_id).name
        with tempfile.TemporaryDirectory() as folder:
            page = Path(folder) / REPORT_FILE
            write_report(tracker.tracking_uri, name, page, tracker.parent_run_id)
            tracker.client.log_artifact(tracker.parent_run_id, str(page))
    except Exception as err:  # the search's results stand without it
        tracker.set_tags({"automl.report_error": f"{type(err).__name__}: {err}"[:500]})


REPORT_FILE = "search_report.html"
