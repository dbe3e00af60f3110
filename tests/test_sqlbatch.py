"""The SQL fast path of log_batch leaves the store exactly as MLflow's own log_batch does."""

from __future__ import annotations

import math
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from orchestrator.tracking import sqlbatch
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)

INF = float("inf")


class CountingClient(MlflowClient):
    """A real client that counts the batches that took MLflow's own path."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.mlflow_batches = 0

    def log_batch(self, *args, **kwargs):
        self.mlflow_batches += 1
        return super().log_batch(*args, **kwargs)


def _batches() -> list[dict]:
    """Two batches that exercise NaN, ±inf, duplicates, same-step rows and latest-metric rules."""
    return [
        {
            "metrics": [
                Metric("loss", 1.0, 1000, 0),
                Metric("loss", 0.5, 1000, 1),
                Metric("loss", 0.5, 1000, 1),  # an exact duplicate: stored once
                Metric("loss", 0.25, 999, 2),
                Metric("loss", 0.75, 1001, 2),  # same step, later: the latest
                Metric("acc", float("nan"), 1000, 0),
                Metric("acc", INF, 1000, 1),
                Metric("gap", -INF, 1000, 3),
                Metric("gap", 2.0, 1000, 3),  # same step and time, larger value: the latest
            ],
            "params": [Param("lr", "0.001"), Param("model.hidden_sizes", "[64, 64]")],
            "tags": [RunTag("automl.status", "RUNNING"), RunTag("note", "a")],
        },
        {
            "metrics": [
                Metric("loss", 9.0, 2000, 1),  # older step: history only, latest stays
                Metric("acc", 0.9, 2000, 4),  # newer step: the latest moves
                Metric("new", 3.0, 2000, 0),
            ],
            "params": [Param("seed", "0")],
            "tags": [
                RunTag("automl.status", "COMPLETED"),
                RunTag("note", "b"),
                RunTag("note", "c"),
            ],
            "end_status": "FINISHED",
        },
    ]


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple]:
    rows = client.get_metric_history(run_id, key)
    return sorted((m.step, m.timestamp, repr(m.value)) for m in rows)


def _snapshot(client: MlflowClient, run_id: str) -> dict:
    run = client.get_run(run_id)
    metrics = {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    return {
        "metrics": metrics,
        "params": run.data.params,
        "tags": tags,
        "status": run.info.status,
        "ended": run.info.end_time is not None,
        "history": {k: _history(client, run_id, k) for k in metrics},
    }


def _write(client: MlflowClient, run_id: str, fast: bool, monkeypatch) -> None:
    monkeypatch.setattr(sqlbatch, "ENABLED", fast)
    for batch in _batches():
        sqlbatch.log_batch(client, run_id, **batch)


def test_fast_path_leaves_the_store_as_mlflow_does(tracking_uri, monkeypatch):
    client = CountingClient(tracking_uri)
    exp = client.create_experiment("sqlbatch")
    ours = client.create_run(exp, run_name="fast").info.run_id
    theirs = client.create_run(exp, run_name="mlflow").info.run_id
    _write(client, ours, True, monkeypatch)
    assert client.mlflow_batches == 0  # every batch took the fast path
    _write(client, theirs, False, monkeypatch)
    assert client.mlflow_batches == 2
    expected = _snapshot(client, theirs)
    assert expected["metrics"]["loss"] == 0.75 and expected["metrics"]["acc"] == 0.9
    assert expected["status"] == "FINISHED" and expected["ended"]
    assert _snapshot(client, ours) == expected


def test_mlflow_decides_where_the_run_already_has_the_rows(tracking_uri):
    client = CountingClient(tracking_uri)
    exp = client.create_experiment("sqlbatch")
    run_id = client.create_run(exp).info.run_id
    sqlbatch.log_batch(client, run_id, metrics=[Metric("m", 1.0, 5, 0)], params=[Param("p", "1")])
    assert client.mlflow_batches == 0
    # the same parameter value again, and a metric row that is already stored: accepted once
    sqlbatch.log_batch(client, run_id, metrics=[Metric("m", 1.0, 5, 0)], params=[Param("p", "1")])
    assert client.mlflow_batches == 1
    assert _history(client, run_id, "m") == [(0, 5, "1.0")]
    # a changed parameter: MLflow's own refusal
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        sqlbatch.log_batch(client, run_id, params=[Param("p", "2")])
    assert client.get_run(run_id).data.params == {"p": "1"}


def test_refusals_are_mlflows(tracking_uri):
    client = CountingClient(tracking_uri)
    exp = client.create_experiment("sqlbatch")
    run_id = client.create_run(exp).info.run_id
    with pytest.raises(
        MlflowException, match=r"Invalid value .bad//name. for parameter 'metrics\[0\].name'"
    ):
        sqlbatch.log_batch(client, run_id, metrics=[Metric("bad//name", 1.0, 5, 0)])
    with pytest.raises(MlflowException, match="Duplicate parameter keys"):
        sqlbatch.log_batch(client, run_id, params=[Param("p", "1"), Param("p", "2")])
    client.delete_run(run_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        sqlbatch.log_batch(client, run_id, metrics=[Metric("m", 1.0, 5, 0)])
    with pytest.raises(MlflowException, match="not found"):
        sqlbatch.log_batch(client, "0" * 32, metrics=[Metric("m", 1.0, 5, 0)])
    assert client.get_run(run_id).data.metrics == {}


def test_a_failed_batch_writes_nothing(tracking_uri, monkeypatch):
    client = CountingClient(tracking_uri)
    exp = client.create_experiment("sqlbatch")
    run_id = client.create_run(exp).info.run_id

    def broken(session, run_id, latest):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(sqlbatch, "_update_latest", broken)
    with pytest.raises(MlflowException, match="disk gone"):
        sqlbatch.log_batch(
            client, run_id, metrics=[Metric("m", 1.0, 5, 0)], params=[Param("p", "1")]
        )
    run = client.get_run(run_id)
    assert run.data.params == {} and client.get_metric_history(run_id, "m") == []


def test_other_stores_take_mlflows_path():
    class RestLike:
        class _tracking_client:  # noqa: N801  (the attribute MlflowClient has)
            store = object()

    assert sqlbatch.sql_store(RestLike()) is None


def test_tables_with_other_columns_are_not_written(monkeypatch):
    assert sqlbatch._tables_known()  # the MLflow this runs on
    monkeypatch.setattr(sqlbatch, "METRIC_COLUMNS", sqlbatch.METRIC_COLUMNS | {"model_id"})
    assert not sqlbatch._tables_known()


def _run_view(client: MlflowClient, run_id: str) -> dict:
    run = client.get_run(run_id)
    info = run.info
    return {
        "name": info.run_name,
        "status": info.status,
        "stage": info.lifecycle_stage,
        "user": info.user_id,
        "experiment": info.experiment_id,
        "ended": info.end_time,
        "artifacts": info.artifact_uri.replace(run_id, "<id>"),
        "tags": run.data.tags,
        "params": run.data.params,
    }


def test_created_run_is_the_run_mlflow_creates(tracking_uri, monkeypatch):
    client = CountingClient(tracking_uri)
    exp = client.create_experiment("sqlbatch")
    tags = {"mlflow.parentRunId": "abc", "automl.role": "trial", "mlflow.user": "ana"}
    params = [Param("lr", "0.001"), Param("model.hidden_sizes", "[64]")]
    before = int(time.time() * 1000)
    ours, uri = sqlbatch.create_run(client, exp, "trial-1", tags, params)
    assert client.mlflow_batches == 0 and uri == client.get_run(ours).info.artifact_uri
    monkeypatch.setattr(sqlbatch, "ENABLED", False)
    theirs, _ = sqlbatch.create_run(client, exp, "trial-1", tags, params)
    assert client.mlflow_batches == 1
    assert _run_view(client, ours) == _run_view(client, theirs)
    assert client.get_run(ours).info.start_time >= before
    # it is found, and takes artifacts and batches, like any other run
    found = client.search_runs([exp], "tags.`mlflow.parentRunId` = 'abc'")
    assert {r.info.run_id for r in found} == {ours, theirs}
    client.log_text(ours, "hello", "note.txt")
    assert [f.path for f in client.list_artifacts(ours)] == ["note.txt"]
    monkeypatch.setattr(sqlbatch, "ENABLED", True)
    sqlbatch.log_batch(client, ours, metrics=[Metric("m", 1.0, 5, 0)], end_status="FINISHED")
    assert client.get_run(ours).info.status == "FINISHED"


def test_run_in_a_deleted_experiment_is_refused_by_mlflow(tracking_uri):
    client = CountingClient(tracking_uri)
    exp = client.create_experiment("gone")
    client.delete_experiment(exp)
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        sqlbatch.create_run(client, exp, "t", {}, [])
