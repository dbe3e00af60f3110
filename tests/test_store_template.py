"""A new SQLite store from the template MLflow built once (orchestrator/tracking/schema.py)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from mlflow import MlflowClient

from orchestrator.tracking import schema
from orchestrator.tracking.stores import tracking_client


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(schema.CACHE_ENV, str(folder))
    monkeypatch.delenv(schema.TEMPLATE_ENV, raising=False)
    return folder


def _schema(path) -> tuple[list, list]:
    """Every table's, index's and trigger's definition, with a table's clauses (columns,
    constraints) as a sorted list: SQLAlchemy's batch migrations on SQLite rebuild a table with
    its CHECK constraints in an order that varies between processes (MLflow's own builds of one
    schema differ so), not in what they declare."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
    ddl = sorted(
        (kind, name, table, sorted(re.split(r",\s*\n", sql or "")))
        for kind, name, table, sql in rows
    )
    return ddl, revision


def test_a_seeded_store_has_mlflows_own_schema(cache, in_tmp, monkeypatch):
    monkeypatch.setenv(schema.TEMPLATE_ENV, "0")
    mlflow_built = in_tmp / "mlflow.db"
    MlflowClient(f"sqlite:///{mlflow_built}").search_experiments()  # MLflow builds it
    monkeypatch.delenv(schema.TEMPLATE_ENV)

    seeded = in_tmp / "seeded.db"
    assert schema.seed_sqlite_store(f"sqlite:///{seeded}")
    assert schema.template_path().exists()
    assert _schema(seeded) == _schema(mlflow_built)
    # the template holds no experiment: MLflow makes its Default one where the store is used
    with sqlite3.connect(seeded) as db:
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)


def test_mlflow_opens_a_seeded_store_and_writes_to_it(cache, in_tmp):
    client = tracking_client(f"sqlite:///{in_tmp / 'store.db'}")
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location.startswith(str(in_tmp))
    experiment = client.create_experiment("e")
    run = client.create_run(experiment).info.run_id
    client.log_metric(run, "loss", 0.5, step=3)
    client.set_terminated(run)
    again = MlflowClient(f"sqlite:///{in_tmp / 'store.db'}")
    assert [m.value for m in again.get_metric_history(run, "loss")] == [0.5]


def test_existing_or_foreign_stores_are_left_alone(cache, in_tmp, monkeypatch):
    existing = in_tmp / "existing.db"
    existing.write_bytes(b"not a template")
    assert not schema.seed_sqlite_store(f"sqlite:///{existing}")
    assert existing.read_bytes() == b"not a template"
    assert not schema.seed_sqlite_store(f"sqlite:///{in_tmp / 'no-such-folder' / 'x.db'}")
    assert not schema.seed_sqlite_store("sqlite:///:memory:")
    assert not schema.seed_sqlite_store("sqlite:///relative.db")
    assert not schema.seed_sqlite_store(f"file://{in_tmp}/mlruns")
    assert not schema.seed_sqlite_store("http://127.0.0.1:5000")
    monkeypatch.setenv(schema.TEMPLATE_ENV, "0")
    assert not schema.seed_sqlite_store(f"sqlite:///{in_tmp / 'off.db'}")
    assert not (in_tmp / "off.db").exists()
    assert not cache.exists()  # nothing above needed the template


def test_a_second_seed_keeps_the_first_store_and_leaves_no_temporary_files(cache, in_tmp):
    uri = f"sqlite:///{in_tmp / 'store.db'}"
    assert schema.seed_sqlite_store(uri)
    client = MlflowClient(uri)
    client.create_experiment("kept")
    assert not schema.seed_sqlite_store(uri)
    assert MlflowClient(uri).get_experiment_by_name("kept") is not None
    assert sorted(p.name for p in in_tmp.iterdir()) == ["cache", "store.db"]  # no .tmp files
    assert [p.name for p in cache.iterdir()] == [schema.template_path().name]


def test_a_template_that_cannot_be_built_leaves_the_store_to_mlflow(cache, in_tmp, monkeypatch):
    from mlflow.store.db import utils

    def broken(engine):
        raise RuntimeError("migration failed")

    monkeypatch.setattr(utils, "_initialize_tables", broken)
    uri = f"sqlite:///{in_tmp / 'store.db'}"
    assert not schema.seed_sqlite_store(uri)
    assert not (in_tmp / "store.db").exists()
    assert not schema.template_path().exists()
    assert list(cache.iterdir()) == []  # the half-built template is gone too
    monkeypatch.undo()
    assert MlflowClient(uri).get_experiment("0").name == "Default"  # MLflow built it


def test_the_template_is_keyed_by_mlflow_and_its_migrations(cache, monkeypatch):
    import mlflow

    key = schema.schema_key()
    assert key.startswith(f"{mlflow.__version__}-")
    monkeypatch.setattr(mlflow, "__version__", "0.0.0")
    assert schema.schema_key() != key
    assert schema.template_path().parent == cache
