"""``log_batch`` for SQL tracking stores: a run's rows inserted many at a time, in one transaction.

MLflow's ``SqlAlchemyStore.log_batch`` builds an ORM object per row (and, for metrics, merges a
second one per key into ``latest_metrics``) in three sessions, one per kind: about 0.2 ms of CPU a
row. A digits trial's ~180 metric rows and ~80 parameters so cost the driver's writer ~55 ms, 7%
of the 0.8 s trial it logs (benchmark B3). :func:`log_batch` writes the same rows through MLflow's
own table models as multi-row INSERTs in one transaction, after MLflow's own validation.

It takes the fast path only where the result is the one MLflow's path would leave: a SQL store,
parameters the run does not have yet, no run-name tag, no logged-model metrics, an active run, and
no stored metric row of the run with one of the batch's timestamps (MLflow skips rows already
stored). Anything else, and any MLflow whose tables or store differ from what this knows, goes
through ``MlflowClient.log_batch`` (``AUTOML_SQL_BATCH=0``: always). tests/test_sqlbatch.py
checks that both paths leave the same runs, metric histories, latest metrics, parameters and tags.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, RunTag, SourceType
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path

try:
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import (
        SqlExperiment,
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.validation import (
        _validate_batch_log_data,
        _validate_batch_log_limits,
        _validate_param_keys_unique,
    )
except ImportError:  # an MLflow laid out differently: always MLflow's own path
    SqlAlchemyStore = None

# AUTOML_SQL_BATCH=0 sends every batch through MLflow's own path (so do the tests that compare).
ENABLED = os.environ.get("AUTOML_SQL_BATCH", "1") != "0"
# The columns this writes; an MLflow whose tables have others takes MLflow's own path.
METRIC_COLUMNS = {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}
PARAM_COLUMNS = {"key", "value", "run_uuid"}
RUN_COLUMNS = {
    "run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id", "status",
    "start_time", "end_time", "deleted_time", "source_version", "lifecycle_stage",
    "artifact_uri", "experiment_id",
}  # fmt: skip


def _tables_known() -> bool:
    tables = {
        SqlMetric: METRIC_COLUMNS,
        SqlLatestMetric: METRIC_COLUMNS,
        SqlParam: PARAM_COLUMNS,
        SqlTag: PARAM_COLUMNS,
        SqlRun: RUN_COLUMNS,
    }
    return all(set(model.__table__.columns.keys()) == cols for model, cols in tables.items())


if SqlAlchemyStore is not None and not _tables_known():
    SqlAlchemyStore = None


def sql_store(client: MlflowClient) -> Any | None:
    """The client's ``SqlAlchemyStore``, or None for any other store (REST, file, Databricks)."""
    if SqlAlchemyStore is None or not ENABLED:
        return None
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    needed = ("ManagedSessionMaker", "_get_query", "sanitize_metric_value")
    if isinstance(store, SqlAlchemyStore) and all(hasattr(store, a) for a in needed):
        return store
    return None


def log_batch(
    client: MlflowClient,
    run_id: str,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
    end_status: str | None = None,
) -> None:
    """``client.log_batch(run_id, metrics, params, tags)``, in one transaction on a SQL store.

    ``end_status`` (``FINISHED``, ``FAILED``, ``KILLED``) then ends the run, as
    ``client.set_terminated`` would, in the same transaction.
    """
    metrics, params, tags = list(metrics), list(params), list(tags)
    store = sql_store(client)
    simple = all(m.model_id is None for m in metrics) and MLFLOW_RUN_NAME not in {
        t.key for t in tags
    }
    if store is None or not simple or not _write(store, run_id, metrics, params, tags, end_status):
        if metrics or params or tags:
            client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        if end_status is not None:
            client.set_terminated(run_id, end_status)


def create_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    tags: dict[str, str],
    params: Sequence[Param] = (),
) -> tuple[str, str]:
    """``client.create_run(experiment_id, run_name=..., tags=...)`` and then ``params`` logged,
    in one transaction on a SQL store; the new run's ``(run_id, artifact_uri)``.

    The run row is the one MLflow's ``SqlAlchemyStore.create_run`` adds (``RUNNING``, source
    ``UNKNOWN``, the user from the ``mlflow.user`` tag, the ``mlflow.runName`` tag, artifacts under
    the experiment's location); tests/test_sqlbatch.py compares the two.
    """
    params = list(params)
    store = sql_store(client)
    made = None
    if store is not None and run_name and MLFLOW_RUN_NAME not in tags:
        made = _create(store, str(experiment_id), run_name, dict(tags), params)
    if made is None:
        run = client.create_run(experiment_id, run_name=run_name, tags=tags).info
        log_batch(client, run.run_id, params=params)
        made = run.run_id, run.artifact_uri
    return made


def _create(
    store: Any, experiment_id: str, run_name: str, tags: dict[str, str], params: list
) -> tuple[str, str] | None:
    """Insert the run, its tags and ``params``; None (nothing written) where MLflow decides."""
    run_tags = [RunTag(k, v) for k, v in {**tags, MLFLOW_RUN_NAME: run_name}.items()]
    _, params, run_tags = _validate_batch_log_data([], params, run_tags)
    _validate_batch_log_limits([], params, run_tags)
    _validate_param_keys_unique(params)
    with store.ManagedSessionMaker(read_only=False) as session:
        found = (
            store._get_query(session, SqlExperiment)
            .filter(SqlExperiment.experiment_id == int(experiment_id))
            .with_entities(SqlExperiment.lifecycle_stage, SqlExperiment.artifact_location)
            .all()
        )
        if len(found) != 1 or found[0][0] != LifecycleStage.ACTIVE:
            return None  # missing or deleted: MLflow's path raises its own error
        run_id = uuid.uuid4().hex
        artifact_uri = append_to_uri_path(found[0][1], run_id, store.ARTIFACTS_FOLDER_NAME)
        row = {
            "run_uuid": run_id,
            "name": run_name,
            "source_type": SourceType.to_string(SourceType.UNKNOWN),
            "source_name": "",
            "entry_point_name": "",
            "user_id": tags.get(MLFLOW_USER, "unknown"),
            "status": RunStatus.to_string(RunStatus.RUNNING),
            "start_time": get_current_time_millis(),
            "end_time": None,
            "deleted_time": None,
            "source_version": "",
            "lifecycle_stage": LifecycleStage.ACTIVE,
            "artifact_uri": artifact_uri,
            "experiment_id": int(experiment_id),
        }
        _insert(session, SqlRun, [row])
        _insert(session, SqlTag, _keyed(run_id, run_tags))
        _insert(session, SqlParam, _keyed(run_id, params))
    return run_id, artifact_uri


def _write(
    store: Any, run_id: str, metrics: list, params: list, tags: list, end_status: str | None
) -> bool:
    """Insert the batch; False (nothing written) where MLflow's path must decide instead."""
    metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
    _validate_batch_log_limits(metrics, params, tags)
    _validate_param_keys_unique(params)
    rows: dict[tuple, dict[str, Any]] = {}  # keyed like the metrics table's primary key
    for m in metrics:
        is_nan, value = store.sanitize_metric_value(m.value)
        row = {"key": m.key, "value": value, "timestamp": int(m.timestamp), "step": int(m.step)}
        rows.setdefault((*row.values(), is_nan), {**row, "is_nan": is_nan, "run_uuid": run_id})
    latest: dict[str, dict[str, Any]] = {}
    for row in rows.values():
        best = latest.get(row["key"])
        if best is None or _order(row) > _order(best):
            latest[row["key"]] = row
    with store.ManagedSessionMaker(read_only=False) as session:
        run = store._get_query(session, SqlRun).filter(SqlRun.run_uuid == run_id)
        if run.with_entities(SqlRun.lifecycle_stage).all() != [(LifecycleStage.ACTIVE,)]:
            return False  # missing or deleted: MLflow's path raises its own error
        keys = [p.key for p in params]
        if keys and _exists(
            session,
            sa.select(SqlParam.key).where(SqlParam.run_uuid == run_id, SqlParam.key.in_(keys)),
        ):
            return False  # MLflow decides: equal values are skipped, changed ones refused
        stamps = {r["timestamp"] for r in rows.values()}
        if rows and _exists(
            session,
            sa.select(SqlMetric.key).where(
                SqlMetric.run_uuid == run_id, SqlMetric.timestamp.in_(stamps)
            ),
        ):
            return False  # a row may already be stored: MLflow's path skips those
        _insert(
            session,
            SqlParam,
            _keyed(run_id, params),
        )
        if rows:
            _insert(session, SqlMetric, list(rows.values()))
            _update_latest(session, run_id, latest)
        for tag in tags:
            session.merge(SqlTag(run_uuid=run_id, key=tag.key, value=tag.value))
        if end_status is not None:  # what update_run_info does, without reading the run back
            status = RunStatus.to_string(RunStatus.from_string(end_status))
            run.update(
                {SqlRun.status: status, SqlRun.end_time: get_current_time_millis()},
                synchronize_session=False,
            )
    return True


def _order(row: dict[str, Any]) -> tuple:
    """MLflow's "more recent" for a metric: by step, then timestamp, then value."""
    return (row["step"], row["timestamp"], row["value"])


def _update_latest(session: Any, run_id: str, latest: dict[str, dict[str, Any]]) -> None:
    """Keep ``latest_metrics`` as MLflow does: a stored entry moves only to a more recent one."""
    stored = {
        m.key: m
        for m in session.scalars(
            sa.select(SqlLatestMetric).where(
                SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(list(latest))
            )
        )
    }
    fresh = []
    for key, row in latest.items():
        old = stored.get(key)
        if old is None:
            fresh.append(dict(row))
        elif _order(row) > (old.step, old.timestamp, old.value):
            old.value, old.step = row["value"], row["step"]
            old.timestamp, old.is_nan = row["timestamp"], row["is_nan"]
    _insert(session, SqlLatestMetric, fresh)


def _keyed(run_id: str, items: list) -> list[dict[str, Any]]:
    """Rows of the params or tags table: a run's key/value pairs."""
    return [{"run_uuid": run_id, "key": i.key, "value": i.value} for i in items]


def _exists(session: Any, query: Any) -> bool:
    return session.execute(query.limit(1)).first() is not None


def _insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT of ``rows`` into ``model``'s table.

    Straight to the driver's ``executemany`` where its placeholders are positional (SQLite's
    ``?``, or ``%s`` for PostgreSQL and MySQL drivers): SQLAlchemy's own executemany spends
    ~40 µs a row building its parameters, most of what is left of a batch's cost.
    """
    if not rows:
        return
    table = model.__table__
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(
        session.get_bind().dialect.paramstyle
    )
    if mark is None:
        session.execute(sa.insert(table), rows)
        return
    columns = list(rows[0])
    preparer = session.get_bind().dialect.identifier_preparer
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        preparer.format_table(table),
        ", ".join(preparer.quote(c) for c in columns),
        ", ".join([mark] * len(columns)),
    )
    session.connection().exec_driver_sql(sql, [tuple(r[c] for c in columns) for r in rows])
