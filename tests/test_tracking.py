"""The search's parent run, the trials' child runs and the read-back helpers, on real SQLite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestrator import tracking
from orchestrator.config import Config, apply_overrides
from orchestrator.tracking import SearchTracker, TrialTracker
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)

PARENT = "mlflow.parentRunId"


def _artifact(client: MlflowClient, run_id: str, name: str, dst: Path) -> Path:
    return Path(client.download_artifacts(run_id, name, str(dst)))


def _children(client: MlflowClient, tracker: SearchTracker) -> list:
    return client.search_runs(
        [tracker.experiment_id], f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'"
    )


# --------------------------------------------------------------------------- store location
def test_resolve_tracking_uri_order(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rel/store.db")
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/rel/store.db"
    assert tracking.resolve_tracking_uri("http://host:5000") == "http://host:5000"


@pytest.mark.parametrize("before", ["unset", "environment", "set"])
def test_use_tracking_uri_restores_mlflows_uri(before, tmp_path, monkeypatch):
    import mlflow

    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)  # as MLflow's own context manager unsets it
    if before == "environment":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    elif before == "set":
        mlflow.set_tracking_uri(other)
    default = mlflow.get_tracking_uri()
    try:
        with tracking.use_tracking_uri(f"sqlite:///{tmp_path / 'used.db'}"):
            assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'used.db'}"
        assert mlflow.get_tracking_uri() == default
        assert mlflow.is_tracking_uri_set() == (before != "unset")
        assert os.environ.get("MLFLOW_TRACKING_URI") == (None if before == "unset" else other)
    finally:
        mlflow.set_tracking_uri(None)


def test_default_store_puts_artifacts_in_working_directory(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert (
        tracking.artifact_location(uri, "my exp/1")
        == (tmp_path / "mlartifacts" / "my_exp_1").as_uri()
    )
    assert tracking.artifact_location("http://host:5000", "x") is None


# --------------------------------------------------------------------------- parent run
def test_parent_run_tags_params_config_and_dataset(tracking_uri, iris_result, tmp_path):
    config = iris_result.config
    with SearchTracker(tracking_uri, "exp") as search:
        dataset = tracking.describe_dataset(iris_result.run)
        pid = search.start(
            config,
            "s1",
            tags={"team": "ml"},
            params={"extra": 3},
            dataset=dataset,
            metric="val_accuracy",
        )
    client = MlflowClient(tracking_uri)
    run = client.get_run(pid)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["automl.search"] == "s1" and tags["automl.role"] == "search"
    assert tags["automl.algorithm"] == config.search.algorithm
    assert tags["automl.scheduler"] == config.search.scheduler
    assert tags["automl.metric"] == "val_accuracy" and tags["automl.mode"] == "max"
    assert tags["automl.dataset_digest"] == dataset["digest"] and tags["team"] == "ml"
    assert run.data.params["search.num_samples"] == str(config.search.num_samples)
    assert run.data.params["extra"] == "3"
    saved = json.loads(_artifact(client, pid, "config.json", tmp_path).read_text())
    assert saved == config.model_dump(mode="json")
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.digest == dataset["digest"] and inp.dataset.name == "iris"


@pytest.mark.parametrize(
    ("exc", "status"),
    [(ValueError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")],
    ids=["error", "interrupt"],
)
def test_parent_ends_failed_or_killed(tracking_uri, exc, status):
    search = SearchTracker(tracking_uri, "exp")
    with pytest.raises(type(exc)), search:
        search.start(Config(), "s")
        raise exc
    assert MlflowClient(tracking_uri).get_run(search.parent_run_id).info.status == status


def test_mlflow_run_id_becomes_parent_and_leaves_environment(tracking_uri, monkeypatch):
    client = MlflowClient(tracking_uri)
    outer = client.create_run(client.create_experiment("projects")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)
    with SearchTracker(tracking_uri, "exp") as search:
        assert search.start(Config(), "s") == outer
        assert "MLFLOW_RUN_ID" not in os.environ
        trial = TrialTracker(*search.ids)
        child = trial.start("t1", Config())
        trial.stopped_early()
    assert child != outer
    assert client.get_run(child).data.tags[PARENT] == outer
    assert client.get_run(outer).data.tags["automl.search"] == "s"


def test_long_params_truncated_but_config_json_complete(tracking_uri, tmp_path):
    space = {f"model.p{i}": {"choice": list(range(40))} for i in range(60)}
    config = apply_overrides(Config(), {"search.space": space})
    with SearchTracker(tracking_uri, "exp") as search:
        pid = search.start(config, "s", params={"search.space": config.search.space})
    client = MlflowClient(tracking_uri)
    value = client.get_run(pid).data.params["search.space"]
    assert len(value) == tracking.MAX_PARAM_LENGTH and value.endswith(tracking.TRUNCATED)
    saved = json.loads(_artifact(client, pid, "config.json", tmp_path).read_text())
    assert saved["search"]["space"] == json.loads(json.dumps(space))


# --------------------------------------------------------------------------- trials
def test_trial_child_run_metrics_and_artifacts(tracking_uri, iris_result, tmp_path):
    cv, names = iris_result.cv, iris_result.run.prepared.class_names
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(iris_result.config, "s", metric="val_accuracy")
        trial = TrialTracker(*search.ids)
        run_id = trial.start("trial_00001", iris_result.config)
        for row in cv.history:
            trial.log_epoch(row, step=int(row["epoch"]))
        client = MlflowClient(tracking_uri)
        assert client.get_metric_history(run_id, "val_accuracy") == []  # buffered, not written
        trial.finish(cv, "classification", names, iris_result.run.cleaning)
        trial.fail("too late")  # idempotent: the run stays FINISHED
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "trial_00001"
    assert run.data.tags[PARENT] == search.parent_run_id
    assert run.data.tags["automl.trial_id"] == "trial_00001"
    assert run.data.tags["automl.status"] == "COMPLETED"
    assert run.data.params["training.optimizer.lr"] == str(iris_result.config.training.optimizer.lr)
    steps = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
    assert steps == [int(r["epoch"]) for r in cv.history]
    assert len(client.get_metric_history(run_id, "train_loss")) == len(cv.history)
    summary = cv.summary()
    for name, stats in summary.items():
        assert run.data.metrics[f"cv_{name}_mean"] == pytest.approx(stats["mean"], nan_ok=True)
        assert f"cv_{name}_std" in run.data.metrics
        assert f"fold2_{name}" in run.data.metrics
    files = {a.path for a in client.list_artifacts(run_id)}
    assert {
        "config.json",
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "roc_curve.png",
        "learning_curves.png",
        "error_analysis.csv",
        "cleaning_report.json",
    } <= files
    cm = pd.read_csv(_artifact(client, run_id, "confusion_matrix.csv", tmp_path), index_col=0)
    assert list(cm.columns) == names and list(cm.index) == names
    assert int(cm.to_numpy().sum()) == int((~np.isnan(cv.oof_output).any(axis=1)).sum())
    for png in ("confusion_matrix.png", "roc_curve.png", "learning_curves.png"):
        assert _artifact(client, run_id, png, tmp_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = pd.read_csv(_artifact(client, run_id, "error_analysis.csv", tmp_path))
    assert len(errors) > 0
    report = json.loads(_artifact(client, run_id, "cleaning_report.json", tmp_path).read_text())
    assert report == iris_result.run.cleaning.to_dict()


def test_log_epoch_auto_flushes_when_buffer_is_old(tracking_uri):
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(Config(), "s")
        trial = TrialTracker(*search.ids, flush_seconds=0.0)
        run_id = trial.start("t", {"a": 1})
        trial.log_epoch({"val_loss": 0.5, "epoch": 1}, step=1)
        history = MlflowClient(tracking_uri).get_metric_history(run_id, "val_loss")
        assert [(m.step, m.value) for m in history] == [(1, 0.5)]
        trial.stopped_early()


def test_failed_trial_ends_failed_with_error_tag(tracking_uri):
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(Config(), "s")
        trial = TrialTracker(*search.ids)
        with pytest.raises(ValueError), trial:
            trial.start("t_fail", {"a": 1})
            trial.log_epoch({"val_loss": 1.0}, step=1)
            raise ValueError("diverged\nat epoch 3")
    run = MlflowClient(tracking_uri).get_run(trial.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["automl.error"] == "ValueError: diverged at epoch 3"
    assert run.data.metrics["val_loss"] == 1.0  # flushed before ending


def test_ray_stop_ends_trial_finished_as_stopped(tracking_uri):
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(Config(), "s")
        trial = TrialTracker(*search.ids)
        with pytest.raises(SystemExit), trial:  # how Ray stops a function trainable
            trial.start("t_stop", {"a": 1})
            raise SystemExit(0)
    run = MlflowClient(tracking_uri).get_run(trial.run_id)
    assert (run.info.status, run.data.tags["automl.status"]) == ("FINISHED", "STOPPED")


def test_resume_reattaches_parent_and_trials(tracking_uri):
    config = Config()
    first = SearchTracker(tracking_uri, "exp")
    with pytest.raises(KeyboardInterrupt), first:
        first.start(config, "s", resume=True)
        trial = TrialTracker(*first.ids)
        trial_run = trial.start("t1", config)
        trial.kill()
        raise KeyboardInterrupt
    client = MlflowClient(tracking_uri)
    assert client.get_run(first.parent_run_id).info.status == "KILLED"
    with SearchTracker(tracking_uri, "exp") as again:
        assert again.start(config, "s", resume=True) == first.parent_run_id
        assert client.get_run(first.parent_run_id).info.status == "RUNNING"
        trial = TrialTracker(*again.ids)
        assert trial.start("t1", config) == trial_run
        trial.stopped_early()
    runs = client.search_runs([first.experiment_id])
    assert len(runs) == 2 and client.get_run(trial_run).info.status == "FINISHED"
    with SearchTracker(tracking_uri, "exp") as fresh:  # without resume: a new search
        assert fresh.start(config, "s") != first.parent_run_id


# --------------------------------------------------------------------------- read-back
def _fake_trial(search: SearchTracker, trial_id: str, value: float) -> str:
    trial = TrialTracker(*search.ids)
    run_id = trial.start(trial_id, {"x": value})
    tracking.log_metrics(trial.client, run_id, {"cv_accuracy_mean": value})
    trial.stopped_early()
    return run_id


def test_list_searches_and_best_run(tracking_uri):
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(Config(), "s", metric="val_accuracy", mode="max")
        _fake_trial(search, "a", 0.5)
        best = _fake_trial(search, "b", 0.9)
        _fake_trial(search, "c", 0.7)
        failed = TrialTracker(*search.ids)
        failed.start("d", {})
        failed.fail("boom")
    (listed,) = tracking.list_searches(tracking_uri, "exp")
    assert listed["search"] == "s" and listed["status"] == "FINISHED"
    assert [t["trial_id"] for t in listed["trials"]] == ["a", "b", "c", "d"]
    assert [t["status"] for t in listed["trials"]][-1] == "FAILED"
    assert listed["best_value"] == 0.9 and listed["refit"] is None
    picked = tracking.best_run(tracking_uri, "exp")
    assert picked["run_id"] == best and picked["value"] == 0.9
    assert picked["params"] == {"x": "0.9"} and picked["model_uri"] is None
    with pytest.raises(tracking.AutoMLError, match="no experiment named 'nope'"):
        tracking.list_searches(tracking_uri, "nope")


def test_best_run_minimises_loss_metrics(tracking_uri):
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(Config(), "s", metric="val_loss")
        for name, value in (("a", 0.3), ("b", 0.1), ("c", 0.2)):
            trial = TrialTracker(*search.ids)
            run_id = trial.start(name, {})
            tracking.log_metrics(trial.client, run_id, {"cv_loss_mean": value})
            trial.stopped_early()
    assert tracking.best_run(tracking_uri, "exp")["trial_id"] == "b"


def test_integer_data_logs_without_mlflows_missing_value_hint(tracking_uri, recwarn):
    """MLflow hints, for every integer schema it infers, that integers cannot hold missing values;
    our dataset records and (widened) model signatures make that noise, so it is filtered."""
    import warnings

    import mlflow

    from orchestrator.tracking.stores import _log_dataset, dataset_entity, quiet_schema_hints

    frame = pd.DataFrame({"a": np.arange(5), "b": np.arange(5) * 2})
    with warnings.catch_warnings(record=True) as raw:  # the control: MLflow does warn
        warnings.simplefilter("always")
        dataset_entity(mlflow.data.from_pandas(frame, name="ints"))
    assert any("integer column" in str(w.message) for w in raw)

    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("ints")).info.run_id
    warnings.simplefilter("always")
    _log_dataset(client, run_id, {"name": "ints", "data": frame, "digest": "0" * 16})
    with quiet_schema_hints():
        dataset_entity(mlflow.data.from_pandas(frame, name="ints"))
    assert not [w for w in recwarn if "integer column" in str(w.message)]
    assert client.get_run(run_id).inputs.dataset_inputs[0].dataset.name == "ints"
