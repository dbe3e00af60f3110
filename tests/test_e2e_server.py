"""A search tracked over HTTP by a real `mlflow server`: Ray workers log their trials and upload
their artifacts through the server, and everything is read back through it."""

from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestrator.search import run_search
from orchestrator.tracking import use_tracking_uri
from tests.conftest import tiny_config
from tests.e2e_helpers import mlflow_server
from tests.test_tracking_fixtures import store_template  # noqa: F401  (a fixture)

PARENT = "mlflow.parentRunId"
EPOCHS = 3


@pytest.fixture
def server(store_template, tmp_path):  # noqa: F811
    """A tracking server on a migrated SQLite copy, proxying artifacts into ``art/``."""
    db = tmp_path / "srv.db"
    shutil.copyfile(store_template, db)
    (tmp_path / "art").mkdir()
    args = ("--serve-artifacts", "--artifacts-destination", str(tmp_path / "art"))
    with mlflow_server(f"sqlite:///{db}", tmp_path, *args) as url:
        yield url


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_search_tracked_through_http_server(ray_session, server, tmp_path):
    config = tiny_config(
        **{
            "tracking.enabled": True,
            "tracking.tracking_uri": server,
            "tracking.experiment": "e2e-http",
            "training.epochs": EPOCHS,
            "tracking.trial_figures": "all",  # every trial's PNGs are checked
            "search.algorithm": "grid",
            "search.scheduler": "fifo",
            "search.space": {"training.optimizer.lr": {"grid": [1e-3, 1e-2]}},
        }
    )
    result = run_search(config, name="e2e-http", storage=str(tmp_path / "ray"))
    client = MlflowClient(server)

    experiment = client.get_experiment_by_name("e2e-http")
    # the server chose the artifact root: uploads go through it, not to a path on this machine
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`automl.role` = 'search'")
    assert parent.info.status == "FINISHED" and parent.info.run_name == "e2e-http"
    assert parent.data.tags["automl.search"] == "e2e-http"
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`{PARENT}` = '{parent.info.run_id}'"
    )
    trials = [r for r in children if r.data.tags.get("automl.role") == "trial"]
    assert len(trials) == 2 and len({r.info.run_id for r in trials}) == 2
    assert {r.data.tags["automl.trial_id"] for r in trials} == {t.trial_id for t in result.trials}
    assert {float(r.data.params["training.optimizer.lr"]) for r in trials} == {1e-3, 1e-2}

    n_oof = result.run.prepared.dataset.n_samples  # every non-test row is validated once
    for trial in trials:
        run_id = trial.info.run_id
        assert trial.info.status == "FINISHED"
        history = client.get_metric_history(run_id, "val_accuracy")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
        assert all(0.0 <= m.value <= 1.0 for m in history)
        assert len(client.get_metric_history(run_id, "train_loss")) == EPOCHS
        assert "cv_accuracy_mean" in trial.data.metrics
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"confusion_matrix.csv", "confusion_matrix.png", "config.json"} <= names
        local = client.download_artifacts(run_id, "confusion_matrix.csv", str(tmp_path / run_id))
        counts = pd.read_csv(local, index_col=0)
        assert counts.shape == (3, 3) and int(np.asarray(counts).sum()) == n_oof
    # the proxied uploads landed in the server's artifact destination
    assert len(list((tmp_path / "art").rglob("confusion_matrix.csv"))) == 2

    (refit,) = [r for r in children if r.data.tags.get("automl.role") == "refit"]
    assert refit.info.status == "FINISHED" and refit.info.run_name == "refit-best"
    assert refit.info.run_id == result.refit.tracking["run_id"]
    assert 0.0 <= refit.data.metrics["test_accuracy"] <= 1.0
    name = result.refit.tracking["registered_model"]
    version = client.get_model_version(name, "1")
    assert version.status == "READY" and version.run_id == refit.info.run_id
    assert refit.data.tags["automl.model_version"] == "1"

    rows = result.run.prepared.dataset.X.head(5)
    with use_tracking_uri(server):
        model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    predicted = model.predict(rows)
    assert len(predicted) == 5 and set(predicted["prediction"]) <= set(counts.columns)
    pd.testing.assert_frame_equal(predicted, result.refit.predictor.predict(rows), atol=1e-6)
