"""A tracked search on real Ray, read back with MlflowClient: one parent, a child per trial
logged from the workers, a FAILED trial, artifacts, and the registered refit model."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestrator.search import run_search
from tests.conftest import tiny_config

pytestmark = pytest.mark.usefixtures("ray_session")


def test_tracked_search_is_reviewable_in_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_config(
        **{
            "tracking.enabled": True,
            "tracking.tracking_uri": uri,
            "search.algorithm": "grid",
            "training.optimizer.name": "sgd",
            "training.grad_clip": None,
            "tracking.trial_figures": "all",  # every trial's PNGs are checked
            # lr=1e6 diverges: that trial must end FAILED while the others finish
            "search.space": {"training.optimizer.lr": {"grid": [1e-2, 3e-2, 1e6]}},
        }
    )
    result = run_search(config, name="tracked", storage=str(tmp_path / "rr"))
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tracked")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.role") == "search"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["automl.algorithm"] == "grid"
    assert parent.data.params["search.algorithm"] == "grid"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trials = [r for r in children if r.data.tags.get("automl.trial_id")]
    assert len(trials) == 3
    assert not [r for r in runs if r.info.status == "RUNNING"]
    by_lr = {float(r.data.params["training.optimizer.lr"]): r for r in trials}
    assert by_lr[1e6].info.status == "FAILED"
    assert "diverged" in by_lr[1e6].data.tags["automl.error"]

    good = by_lr[1e-2]
    assert good.info.status == "FINISHED"
    history = client.get_metric_history(good.info.run_id, "val_accuracy")
    assert [m.step for m in history] == list(range(1, 5))
    assert {"cv_accuracy_mean", "cv_accuracy_std", "fold1_accuracy", "fold2_accuracy"} <= set(
        good.data.metrics
    )
    names = {a.path for a in client.list_artifacts(good.info.run_id)}
    assert {
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "roc_curve.png",
        "learning_curves.png",
        "error_analysis.csv",
        "config.json",
    } <= names
    cm = pd.read_csv(
        client.download_artifacts(good.info.run_id, "confusion_matrix.csv", str(tmp_path)),
        index_col=0,
    )
    assert int(cm.to_numpy().sum()) == result.run.prepared.dataset.n_samples
    assert list(cm.columns) == ["setosa", "versicolor", "virginica"]

    # the refit model: registered, champion, and identical to the in-process predictor
    refit = result.refit.tracking
    assert refit["champion"] is True
    loaded = mlflow.pyfunc.load_model(f"models:/{refit['registered_model']}@champion")
    raw = result.run.test.X.reset_index(drop=True)
    expected = result.refit.predictor.predict(raw)
    got = loaded.predict(raw)
    assert list(got["prediction"]) == list(expected["prediction"])
    np.testing.assert_allclose(
        got.filter(like="proba_").to_numpy(), expected.filter(like="proba_").to_numpy(), atol=1e-6
    )


def test_a_tracking_store_that_fails_stops_the_search_with_one_line(tmp_path):
    """The parent run starts beside the first trials; where it cannot (here the SQLite file's
    folder is a file), the search stops and reports why in one line."""
    from orchestrator.errors import TrackingError

    (tmp_path / "afile").write_text("")
    uri = f"sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"
    config = tiny_config(
        **{
            "tracking.enabled": True,
            "tracking.tracking_uri": uri,
            "search.algorithm": "grid",
            "search.space": {"training.optimizer.lr": {"grid": [1e-2, 3e-2]}},
        }
    )
    with pytest.raises(TrackingError) as caught:
        run_search(config, name="broken", storage=str(tmp_path / "rr"), refit=False)
    message = str(caught.value)
    assert "\n" not in message and uri in message and "FileExistsError" in message
