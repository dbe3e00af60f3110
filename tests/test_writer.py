"""Trial runs written by the driver: the trial's side (what a report carries, no MLflow in the
worker) and the writer's side (Tune's events through the Ray adapter's TrialEvents → child runs
on a real SQLite store)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from orchestrator.config import apply_overrides
from orchestrator.pipeline import prepare_run
from orchestrator.ray_adapter import RESULT_KEY, TrialEvents, _running_events
from orchestrator.tracking import SearchTracker
from orchestrator.tracking.writer import TrialRunWriter
from tests.conftest import tiny_config
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- the trial's side
TRIAL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from ray import tune
    import orchestrator.trial as trial
    from orchestrator.pipeline import prepare_run
    from tests.conftest import tiny_config

    reports = []
    tune.report = lambda metrics, checkpoint=None: reports.append(metrics)
    tune.get_checkpoint = lambda: None
    config = tiny_config(**{"search.metric": "val_accuracy", "search.mode": "max",
                            "training.epochs": 5})
    run = prepare_run(config)
    trial.REPORT_INTERVAL_S = float(sys.argv[1])
    trial.run_trial({}, prepared=run.prepared, base_config=config, tracking=True)
    out = []
    for r in reports:
        log = r[trial.RESULT_KEY]
        out.append({"epoch": r["epoch"], "rows": [step for step, _ in log["epochs"]],
                    "has_cv": "cv" in log, "keys": sorted(log["epochs"][0][1])})
    heavy = [m for m in ("mlflow", "sqlalchemy", "matplotlib", "alembic") if m in sys.modules]
    print(json.dumps({"reports": out, "heavy": heavy}))
    """
)


def _trial_reports(interval: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", TRIAL_SCRIPT, str(interval)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_tracked_trial_sends_every_epoch_and_its_cv_result_without_mlflow():
    # throttled (FIFO, an hour between reports): one report at the end carries all five epochs
    slow = _trial_reports(3600.0)
    assert slow["heavy"] == []  # no MLflow, SQLAlchemy or matplotlib in a worker
    assert [(r["epoch"], r["rows"], r["has_cv"]) for r in slow["reports"]] == [
        (5, [1, 2, 3, 4, 5], True)
    ]
    assert "val_accuracy" in slow["reports"][0]["keys"]
    assert "epoch" not in slow["reports"][0]["keys"]
    # no throttle: each epoch's report carries that epoch, the last one the CV result
    fast = _trial_reports(0.0)
    assert [(r["rows"], r["has_cv"]) for r in fast["reports"]] == [
        ([1], False),
        ([2], False),
        ([3], False),
        ([4], False),
        ([5], True),
    ]


# --------------------------------------------------------------------------- the writer's side
@pytest.fixture
def search(tracking_uri):
    config = tiny_config(**{"search.metric": "val_accuracy", "search.mode": "max"})
    with SearchTracker(tracking_uri, "writer") as tracker:
        tracker.start(config, "writer-test")
        yield tracker, config


def _trial(trial_id: str, lr: float, tmp_path: Path | None = None, error: str | None = None):
    trial = SimpleNamespace(trial_id=trial_id, config={"training.optimizer.lr": lr})
    if error is not None:
        trial.pickled_error_file = str(tmp_path / "missing.pkl")
        trial.error_file = str(tmp_path / f"{trial_id}-error.txt")
        Path(trial.error_file).write_text(f"Failure # 1\nTraceback ...\nValueError: {error}\n")
    return trial


def _runs(client: MlflowClient, tracker: SearchTracker) -> dict[str, object]:
    runs = client.search_runs(
        [tracker.experiment_id], f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'"
    )
    return {r.data.tags["automl.trial_id"]: r for r in runs}


def test_writer_logs_each_trial_run_and_ends_it_as_tune_did(search, tmp_path):
    tracker, config = search
    run = prepare_run(config)
    from orchestrator.crossval import cross_validate

    cv = cross_validate(run.prepared, apply_overrides(config, {"training.epochs": 2}))
    history = list(cv)
    done, stopped, failed, open_ = (
        _trial("t_done", 0.01),
        _trial("t_stopped", 0.02),
        _trial("t_failed", 0.03, tmp_path, error="boom"),
        _trial("t_open", 0.04),
    )
    writer = TrialRunWriter(tracker.ids, config, run.prepared.task, {"rows": 1})
    with TrialEvents(writer) as events:
        assert pickle.loads(pickle.dumps(events)) is events  # what a resumed Tuner gets back
        for trial in (done, stopped, failed, open_):
            events.on_trial_start(0, [], trial)
        rows = [(int(m["epoch"]), {"val_accuracy": m["val_accuracy"]}) for m in history]
        # the result Tune keeps (its shallow copy shares the payload) is emptied by the writer
        payload = {"epochs": rows, "cv": cv.result, "class_names": cv.class_names}
        kept = {"epoch": 2, RESULT_KEY: payload}
        events.on_trial_result(0, [], done, dict(kept))
        assert kept[RESULT_KEY] == {}
        events.on_trial_complete(0, [], done)
        events.on_trial_result(0, [], stopped, {RESULT_KEY: {"epochs": rows[:1]}})
        events.on_trial_complete(0, [], stopped)
        events.on_trial_error(0, [], failed)
        events.on_trial_result(0, [], open_, {"epoch": 1})  # no payload: nothing to log
    assert not isinstance(_running_events(), TrialEvents)  # none active once the search ended
    assert writer.errors == [] and writer.seconds > 0

    client = MlflowClient(tracker.tracking_uri)
    runs = _runs(client, tracker)
    assert set(runs) == {"t_done", "t_stopped", "t_failed", "t_open"}
    statuses = {k: (r.info.status, r.data.tags["automl.status"]) for k, r in runs.items()}
    assert statuses == {
        "t_done": ("FINISHED", "COMPLETED"),
        "t_stopped": ("FINISHED", "STOPPED"),
        "t_failed": ("FAILED", "FAILED"),
        "t_open": ("KILLED", "KILLED"),
    }
    assert runs["t_failed"].data.tags["automl.error"] == "ValueError: boom"
    assert runs["t_done"].data.params["training.optimizer.lr"] == "0.01"
    steps = client.get_metric_history(runs["t_done"].info.run_id, "val_accuracy")
    assert [m.step for m in steps] == [1, 2]
    assert "cv_accuracy_mean" in runs["t_done"].data.metrics
    names = {a.path for a in client.list_artifacts(runs["t_done"].info.run_id)}
    assert {"confusion_matrix.png", "cleaning_report.json", "config.json"} <= names
    stopped_steps = client.get_metric_history(runs["t_stopped"].info.run_id, "val_accuracy")
    assert [m.step for m in stopped_steps] == [1]


def test_a_tracking_failure_ends_that_run_failed_and_the_search_goes_on(search):
    tracker, config = search
    writer = TrialRunWriter(tracker.ids, config, "classification")
    with TrialEvents(writer) as events:
        events.on_trial_start(0, [], _trial("t_bad", 0.01))
        events.on_trial_start(0, [], _trial("t_good", 0.01))
        # a CV result that cannot be written (not a CVResult): the writer records it, goes on
        events.on_trial_result(0, [], SimpleNamespace(trial_id="t_bad"), {RESULT_KEY: {"cv": 1}})
        events.on_trial_complete(0, [], SimpleNamespace(trial_id="t_good"))
    assert len(writer.errors) == 1 and writer.errors[0].startswith("trial t_bad: ")
    runs = _runs(MlflowClient(tracker.tracking_uri), tracker)
    assert runs["t_bad"].info.status == "FAILED"
    assert runs["t_good"].data.tags["automl.status"] == "STOPPED"


def _figure_trials(search, setting, delay_s: float):
    """Four trials (CV accuracy 0.5, 0.4, 0.7, 0.7) through a writer, each written before the
    next one ends; the trials with PNGs. ``delay_s``: how long a best must stay the best."""
    import dataclasses

    from orchestrator.crossval import cross_validate

    tracker, config = search
    config = apply_overrides(config, {"tracking.trial_figures": setting, "training.epochs": 1})
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    list(cv)

    def scored(accuracy: float):  # the same result with another fold-mean accuracy
        folds = [{**fold, "accuracy": accuracy} for fold in cv.result.per_fold]
        return dataclasses.replace(cv.result, per_fold=folds)

    writer = TrialRunWriter(tracker.ids, config, run.prepared.task)
    writer.figure_delay_s = delay_s
    with TrialEvents(writer) as events:
        for trial_id, accuracy in [("t1", 0.5), ("t2", 0.4), ("t3", 0.7), ("t4", 0.7)]:
            events.on_trial_start(0, [], _trial(trial_id, 0.01))
            payload = {"epochs": [], "cv": scored(accuracy), "class_names": cv.class_names}
            events.on_trial_result(0, [], _trial(trial_id, 0.01), {RESULT_KEY: payload})
            assert writer.wait_written()  # written (figures due included) before the next ends
    assert writer.errors == [] and 0 < writer.cpu_seconds
    client = MlflowClient(tracker.tracking_uri)
    with_png = set()
    for trial_id, found in _runs(client, tracker).items():
        names = {a.path for a in client.list_artifacts(found.info.run_id)}
        assert {"confusion_matrix.csv", "error_analysis.csv", "config.json"} <= names
        if {"confusion_matrix.png", "roc_curve.png", "learning_curves.png"} <= names:
            with_png.add(trial_id)
        else:
            assert not any(name.endswith(".png") for name in names), names
    return with_png


@pytest.mark.parametrize(
    ("setting", "drawn"),
    [("best", {"t1", "t3"}), (True, {"t1", "t2", "t3", "t4"}), ("none", set())],
)
def test_trial_figures_for_the_best_so_far_every_trial_or_none(search, setting, drawn):
    """``best`` (the default) draws the PNGs of a trial whose CV mean beats every trial that
    finished before it (each is written, and its figures due, before the next ends), so the
    search's best always has them; every trial keeps its tables and its files land in the
    store's artifact folder (the store is local)."""
    assert _figure_trials(search, setting, delay_s=0.0) == drawn


@pytest.mark.parametrize(
    ("setting", "drawn"),
    [("best", {"t3"}), (True, {"t1", "t2", "t3", "t4"}), ("none", set())],
)
def test_best_figures_of_trials_ending_close_together_are_drawn_once(search, setting, drawn):
    """Trials that end within the figure delay of each other: ``best`` draws only the one
    still the best once its figures are due (t1 was beaten by t3 before then), at the end."""
    assert _figure_trials(search, setting, delay_s=60.0) == drawn


def test_a_best_trials_figures_are_drawn_once_it_stayed_the_best_for_the_delay(search):
    """With nothing else happening, the writer wakes up to draw the pending best's figures once
    ``figure_delay_s`` has passed: not before, and not only at the search's end."""
    import dataclasses
    import time

    from orchestrator.crossval import cross_validate

    tracker, config = search
    config = apply_overrides(config, {"tracking.trial_figures": "best", "training.epochs": 1})
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    list(cv)
    client = MlflowClient(tracker.tracking_uri)

    def pngs() -> set[str]:
        found = _runs(client, tracker)["t1"]
        return {a.path for a in client.list_artifacts(found.info.run_id) if a.path.endswith("png")}

    writer = TrialRunWriter(tracker.ids, config, run.prepared.task)
    writer.figure_delay_s = 1.5
    with TrialEvents(writer) as events:
        events.on_trial_start(0, [], _trial("t1", 0.01))
        payload = {"epochs": [], "cv": dataclasses.replace(cv.result), "class_names": None}
        ended = time.monotonic()
        events.on_trial_result(0, [], _trial("t1", 0.01), {RESULT_KEY: payload})
        assert writer.wait_written()
        assert pngs() == set() or time.monotonic() - ended >= 1.5  # not due yet
        deadline = time.monotonic() + 30
        while len(pngs()) < 3 and time.monotonic() < deadline:  # (written one by one)
            time.sleep(0.1)
        drawn_after = time.monotonic() - ended
        assert pngs() == {"confusion_matrix.png", "roc_curve.png", "learning_curves.png"}
        assert writer._thread is not None  # drawn while the search (the writer) still runs
    assert drawn_after >= 1.5 and writer.errors == []


def test_a_resumed_search_draws_best_figures_only_for_trials_that_beat_its_earlier_ones(search):
    """The running best of ``trial_figures: best`` survives a resume: the writer of the resumed
    search (reattach) starts from the best CV mean among the runs already finished."""
    import dataclasses

    from orchestrator.crossval import cross_validate

    tracker, config = search
    config = apply_overrides(config, {"tracking.trial_figures": "best", "training.epochs": 1})
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    list(cv)

    def finish(events, trial_id: str, accuracy: float) -> None:
        folds = [{**fold, "accuracy": accuracy} for fold in cv.result.per_fold]
        result = dataclasses.replace(cv.result, per_fold=folds)
        events.on_trial_start(0, [], _trial(trial_id, 0.01))
        payload = {"epochs": [], "cv": result, "class_names": cv.class_names}
        events.on_trial_result(0, [], _trial(trial_id, 0.01), {RESULT_KEY: payload})

    first = TrialRunWriter(tracker.ids, config, run.prepared.task)
    with TrialEvents(first) as events:
        finish(events, "t1", 0.7)
    resumed = TrialRunWriter(tracker.ids, config, run.prepared.task, reattach=True)
    with TrialEvents(resumed) as events:
        finish(events, "t2", 0.6)  # the best since the resume, but not of the search
        finish(events, "t3", 0.8)
    assert first.errors == [] and resumed.errors == []
    client = MlflowClient(tracker.tracking_uri)
    with_png = {
        trial_id
        for trial_id, found in _runs(client, tracker).items()
        if "confusion_matrix.png" in {a.path for a in client.list_artifacts(found.info.run_id)}
    }
    assert with_png == {"t1", "t3"}


def test_records_past_the_memory_bound_wait_in_the_journal_and_arrive_in_order(
    search, tmp_path, monkeypatch
):
    """While the writer is held (as by a store that does not answer), at most MAX_QUEUED
    records wait in memory and the rest in the journal file; once it goes on, every record is
    written, in order, and the file is gone."""
    import threading

    from orchestrator.tracking import writer as writer_module
    from orchestrator.tracking.journal import Journal, read_records

    monkeypatch.setattr(writer_module, "MAX_QUEUED", 3)
    tracker, config = search
    journal = Journal(tmp_path / "unsent.pkl", {"ids": tracker.ids})
    writer = TrialRunWriter(tracker.ids, config, "classification", None, journal=journal)
    held, first = threading.Event(), threading.Event()
    handle = writer._handle

    def slow_handle(*args):
        first.set()
        held.wait(30)  # the first record keeps the writer busy
        return handle(*args)

    monkeypatch.setattr(writer, "_handle", slow_handle)
    writer.trial_started("t1", {"training.optimizer.lr": 0.01})
    first.wait(10)
    epochs = 12
    for epoch in range(1, epochs + 1):  # one record each: 3 in memory, the rest in the file
        writer.trial_result("t1", {"epochs": [(epoch, {"val_loss": 1.0 / epoch})]})
    assert journal.path.is_file() and len(read_records(journal.path)) == epochs - 3
    held.set()
    writer.trial_completed("t1")
    writer.close()
    assert not journal.path.exists() and writer.errors == []
    client = MlflowClient(tracker.tracking_uri)
    run = _runs(client, tracker)["t1"]
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))
    # in order: the trial's end came after its epochs (an end written first would have closed
    # its run and dropped the later epochs), and each step bears the time its record was made
    times = [m.timestamp for m in sorted(history, key=lambda m: m.step)]
    assert times == sorted(times)
    assert run.info.status == "FINISHED" and run.data.tags["automl.status"] == "STOPPED"
