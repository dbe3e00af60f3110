"""Batch prediction from files (`predict_file`) and model URIs; the shared logged-model fixture."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from orchestrator import serving, tracking
from orchestrator.errors import AutoMLError, DataError, ModelError
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)

__all__ = ["logged_model", "raw_rows"]


def raw_rows(result, n: int = 6) -> pd.DataFrame:
    """Test rows as a user would send them, with a missing value and an unseen category."""
    frame = result.run.test.X.head(n).reset_index(drop=True).copy()
    frame.loc[0, "x1"] = np.nan
    frame.loc[1, "color"] = "purple"
    frame.loc[2, "color"] = None
    return frame


@pytest.fixture(scope="module")
def logged_model(store_template, table_result, tmp_path_factory) -> dict:
    """The tiny table model logged once per module as a refit run, registered and champion."""
    folder = tmp_path_factory.mktemp("store")
    shutil.copyfile(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with tracking.SearchTracker(uri, "serve exp") as search:
        search.start(table_result.config, "s")
        info = tracking.log_refit(
            search,
            table_result.refit,
            table_result.config,
            input_example=table_result.run.test.X.head(3),
            log_model=serving.log_predictor,
        )
    return {**info, "tracking_uri": uri, "result": table_result}


def test_predict_csv_with_target_gaps_and_unseen_category(logged_model, tmp_path):
    result = logged_model["result"]
    raw = raw_rows(result)
    raw.assign(label="yes", row_id=range(len(raw))).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out" / "pred.csv"
    got = serving.predict_file(
        logged_model["model_uri"], str(tmp_path / "in.csv"), str(out), logged_model["tracking_uri"]
    )
    expected = result.predictor.predict(pd.read_csv(tmp_path / "in.csv")[list(raw.columns)])
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.columns) == ["prediction", "proba_no", "proba_yes"]
    assert set(got["prediction"]) <= {"no", "yes"}
    pd.testing.assert_frame_equal(pd.read_csv(out), got, check_dtype=False)


@pytest.mark.parametrize("form", ["champion", "version", "runs", "folder"])
def test_predict_parquet_through_every_uri_form(logged_model, tmp_path, form):
    result = logged_model["result"]
    raw = raw_rows(result)
    raw.to_parquet(tmp_path / "in.parquet")
    name, run_id = logged_model["registered_model"], logged_model["run_id"]
    uri = {
        "champion": f"models:/{name}@champion",
        "version": f"models:/{name}/{logged_model['version']}",
        "runs": f"runs:/{run_id}/model",
        "folder": None,
    }[form]
    if form == "folder":  # a local copy of the model directory
        from mlflow.artifacts import download_artifacts

        with tracking.use_tracking_uri(logged_model["tracking_uri"]):
            uri = download_artifacts(
                artifact_uri=logged_model["model_uri"], dst_path=str(tmp_path / "model")
            )
    got = serving.predict_file(
        uri, str(tmp_path / "in.parquet"), None, logged_model["tracking_uri"]
    )
    pd.testing.assert_frame_equal(got, result.predictor.predict(raw))


def test_missing_columns_are_named(logged_model, tmp_path):
    raw_rows(logged_model["result"]).drop(columns=["x1", "color"]).to_csv(
        tmp_path / "in.csv", index=False
    )
    with pytest.raises(DataError, match=r"missing column\(s\): x1, color; the model expects"):
        serving.predict_file(
            logged_model["model_uri"], str(tmp_path / "in.csv"), None, logged_model["tracking_uri"]
        )


@pytest.mark.parametrize(
    "uri, match",
    [
        ("models:/no-such-model@champion", "cannot load model 'models:/no-such-model@champion'"),
        ("models:/no-such-model/3", "cannot load model"),
        ("runs:/0123456789abcdef/model", "cannot load model"),
        ("not/a/folder", "not a folder, nor a runs:/"),
    ],
    ids=["alias", "version", "run", "path"],
)
def test_unknown_model_uri_is_one_clear_line(logged_model, tmp_path, uri, match):
    (tmp_path / "in.csv").write_text("x1,x2,color\n1,2,red\n")
    with pytest.raises(ModelError, match=match) as info:
        serving.predict_file(uri, str(tmp_path / "in.csv"), None, logged_model["tracking_uri"])
    assert isinstance(info.value, AutoMLError) and "\n" not in str(info.value)


def test_folder_without_predictor_is_refused(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(ModelError, match="has no predictor.pkl artifact"):
        serving.load_predictor(str(tmp_path / "model"))


def test_unsupported_or_absent_data_file(logged_model, tmp_path):
    uri, store = logged_model["model_uri"], logged_model["tracking_uri"]
    with pytest.raises(DataError, match="prediction data not found"):
        serving.predict_file(uri, str(tmp_path / "absent.csv"), None, store)
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported prediction data '.json'"):
        serving.predict_file(uri, str(tmp_path / "in.json"), None, store)
