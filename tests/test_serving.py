"""The refit run, the Model Registry's champion alias and the pyfunc model on raw rows."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestrator import serving, tracking
from orchestrator.tracking import SearchTracker
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)


def _raw_rows(result) -> pd.DataFrame:
    """Test rows as a user would send them, with a missing value and an unseen category."""
    frame = result.run.test.X.head(6).reset_index(drop=True).copy()
    frame.loc[0, "x1"] = np.nan
    frame.loc[1, "color"] = "purple"
    frame.loc[2, "color"] = None
    return frame


def _with_accuracy(refit, value: float):
    return dataclasses.replace(refit, test_metrics={**refit.test_metrics, "accuracy": value})


def test_refit_run_registry_and_champion(tracking_uri, table_result, capfd):
    result = table_result
    names = list(result.predictor.target.classes_)
    example = result.run.test.X.head(3)
    client = MlflowClient(tracking_uri)
    with SearchTracker(tracking_uri, "tiny exp") as search:
        search.start(result.config, "s", metric="val_accuracy")
        first = tracking.log_refit(
            search,
            _with_accuracy(result.refit, 0.8),
            result.config,
            names,
            metric="val_accuracy",
            input_example=example,
            log_model=serving.log_predictor,
        )
        worse = tracking.log_refit(
            search,
            _with_accuracy(result.refit, 0.7),
            result.config,
            names,
            metric="val_accuracy",
            input_example=example,
            log_model=serving.log_predictor,
        )
        better = tracking.log_refit(
            search,
            _with_accuracy(result.refit, 0.9),
            result.config,
            names,
            metric="val_accuracy",
            input_example=example,
            log_model=serving.log_predictor,
        )
    # MLflow downloaded each model to validate its serving input, without a progress bar
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert serving.PROGRESS_BAR_ENV not in os.environ
    name = "tiny-exp"
    assert [first["registered_model"], first["version"], better["version"]] == [name, "1", "3"]
    assert (first["champion"], worse["champion"], better["champion"]) == (True, False, True)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"
    assert client.get_model_version(name, "2").tags["test_accuracy"] == "0.7"

    run = client.get_run(first["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "refit-best"
    assert run.data.tags["mlflow.parentRunId"] == search.parent_run_id
    assert run.data.metrics["test_accuracy"] == 0.8
    assert "test_f1_macro" in run.data.metrics
    files = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"test_confusion_matrix.png", "test_confusion_matrix.csv", "config.json"} <= files
    cm = pd.read_csv(
        client.download_artifacts(first["run_id"], "test_confusion_matrix.csv"), index_col=0
    )
    assert list(cm.columns) == names and cm.to_numpy().sum() == result.run.test.n_samples

    (listed,) = tracking.list_searches(tracking_uri, "tiny exp")
    assert listed["refit"]["model_uri"] == better["model_uri"]  # the newest refit

    # the pyfunc model predicts raw rows exactly like the in-process Predictor
    raw = _raw_rows(result)
    expected = result.predictor.predict(raw)
    model = serving.load_pyfunc(first["model_uri"], tracking_uri)
    pd.testing.assert_frame_equal(model.predict(raw), expected)
    loaded = serving.load_predictor(first["model_uri"], tracking_uri)
    pd.testing.assert_frame_equal(loaded.predict(raw), expected)


@pytest.mark.slow
def test_pyfunc_loads_in_fresh_process_without_project_on_path(
    tracking_uri, table_result, tmp_path
):
    result = table_result
    with SearchTracker(tracking_uri, "exp") as search:
        search.start(result.config, "s")
        info = tracking.log_refit(
            search,
            result.refit,
            result.config,
            input_example=result.run.test.X.head(3),
            log_model=serving.log_predictor,
        )
    raw = _raw_rows(result)
    raw.to_json(tmp_path / "raw.json", orient="split")
    script = textwrap.dedent(f"""
        import sys
        # hide the editable install of the project: the model must bring its own code
        sys.meta_path[:] = [f for f in sys.meta_path
                            if "editable" not in getattr(f, "__module__", "")]
        sys.path[:] = [p for p in sys.path if p not in ("", {os.getcwd()!r})]
        try:
            import orchestrator  # noqa: F401
            raise SystemExit("the project is still importable")
        except ImportError:
            pass
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({tracking_uri!r})
        raw = pd.read_json({str(tmp_path / "raw.json")!r}, orient="split")
        out = mlflow.pyfunc.load_model({info["model_uri"]!r}).predict(raw)
        print(out.to_json(orient="split"))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = pd.DataFrame(
        **{
            k: v
            for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()
            if k in ("columns", "data")
        }
    )
    expected = result.predictor.predict(pd.read_json(tmp_path / "raw.json", orient="split"))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-6)


def test_prepare_input_reshapes_flat_images():
    class Pre:
        input_shape_ = (4, 4, 1)

    class Pred:
        modality, preprocessor = "image", Pre()

    flat = pd.DataFrame(np.arange(32, dtype=np.float32).reshape(2, 16))
    assert serving.prepare_input(Pred(), flat).shape == (2, 4, 4, 1)
    assert serving.prepare_input(Pred(), np.zeros((3, 4, 4, 1))).shape == (3, 4, 4, 1)
    with pytest.raises(ValueError, match="16 values per sample"):
        serving.prepare_input(Pred(), np.zeros((2, 5)))
