"""A table model takes the CSV it was trained from, and whatever types users send for its columns.

Issue 22, defect 2: the signature used to declare an int64 column as double, so
``mlflow.pyfunc.load_model(uri).predict(pd.read_csv(train_csv))`` failed with "Incompatible input
types for column year". Checked through the pyfunc, ``automl predict``, ``mlflow models serve``
(JSON records) and ``automl serve``, on a model logged by a tracked training run.
"""

from __future__ import annotations

import json
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.config import Config, apply_overrides
from orchestrator.tracked import run_tracked_training
from orchestrator.tracking import use_tracking_uri
from tests.test_serving_rest import as_frame, free_port, invoke, running_server
from tests.test_tracking_fixtures import *  # noqa: F403  (store_template)


def penguins_like(n: int = 90) -> pd.DataFrame:
    """344 penguins in miniature: floats with gaps, an int64 year, text with gaps, a bool."""
    rng = np.random.default_rng(3)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], size=n)
    shift = pd.Series(species).map({"Adelie": 0.0, "Gentoo": 6.0, "Chinstrap": 12.0}).to_numpy()
    frame = pd.DataFrame(
        {
            "bill_length_mm": (38 + shift + rng.normal(0, 1.5, n)).round(1),
            "year": rng.integers(2007, 2010, n),  # int64, no gaps: required, "long"
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], size=n),
            "sex": rng.choice(["male", "female"], size=n).astype(object),
            "tagged": rng.random(n) < 0.5,
            "species": species,
        }
    )
    frame.loc[[3, n // 2], "bill_length_mm"] = np.nan
    frame.loc[[1, n - 2], "sex"] = None
    return frame


@pytest.fixture(scope="module")
def penguins(store_template, tmp_path_factory) -> dict:
    import shutil

    folder = tmp_path_factory.mktemp("penguins")
    csv = folder / "penguins.csv"
    penguins_like().to_csv(csv, index=False)
    shutil.copyfile(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = apply_overrides(
        Config(),
        {
            "data.source": str(csv),
            "data.target": "species",
            "split.folds": 2,
            "training.epochs": 15,
            "tracking.tracking_uri": uri,
            "tracking.experiment": "penguins",
            "tracking.registered_model": "penguins",
        },
    )
    result = run_tracked_training(config)
    model_uri = "models:/penguins@champion"
    with use_tracking_uri(uri):
        model = mlflow.pyfunc.load_model(model_uri)
    return {"csv": csv, "uri": uri, "model_uri": model_uri, "model": model, "result": result}


def features(penguins: dict) -> pd.DataFrame:
    return pd.read_csv(penguins["csv"]).drop(columns=["species"])


def test_the_training_csv_goes_straight_in(penguins):
    raw = features(penguins)
    assert raw["year"].dtype == np.int64  # as pandas reads it
    got = penguins["model"].predict(raw)
    expected = penguins["result"].refit.predictor.predict(raw)
    pd.testing.assert_frame_equal(got, expected)
    accuracy = (got["prediction"].to_numpy() == pd.read_csv(penguins["csv"])["species"]).mean()
    assert accuracy > 0.9


def test_signature_describes_the_raw_columns(penguins):
    meta = penguins["model"].metadata
    inputs = {c.name: c for c in meta.get_input_schema().inputs}
    assert list(inputs) == ["bill_length_mm", "year", "island", "sex", "tagged"]
    # columns with gaps in training are optional, the others required
    assert {n for n, c in inputs.items() if not c.required} == {"bill_length_mm", "sex"}
    # the types as read, int64 as long (MLflow would refuse other types under a typed column)
    assert meta.metadata["input_types"] == {
        "bill_length_mm": "double",
        "year": "long",
        "island": "string",
        "sex": "string",
        "tagged": "boolean",
    }


def variants(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What users send for the same columns."""
    return {
        "float-for-int": raw.assign(year=raw["year"].astype(float)),
        "int-for-float": raw.assign(
            bill_length_mm=raw["bill_length_mm"].fillna(40).round().astype(np.int64)
        ),
        "gap-in-int": raw.assign(year=raw["year"].where(raw.index != 0)),
        "nullable-Int64": raw.assign(year=raw["year"].astype("Int64").where(raw.index != 1)),
        "bool-as-int": raw.assign(tagged=raw["tagged"].astype(int)),
        "string-dtype": raw.astype({"island": "string", "sex": "string", "year": "string"}),
        "category-dtype": raw.astype({"island": "category", "year": "category"}),
        "object-dtype": raw.astype(object),
        "none-anywhere": raw.assign(island=None, year=None, tagged=None),
        "optional-left-out": raw.drop(columns=["bill_length_mm", "sex"]),
    }


@pytest.mark.parametrize("case", list(variants(penguins_like(4))))
def test_pyfunc_accepts_what_users_send(penguins, case):
    raw = features(penguins)
    frame = variants(raw)[case]
    got = penguins["model"].predict(frame)
    assert len(got) == len(raw) and got["prediction"].isin(["Adelie", "Gentoo", "Chinstrap"]).all()
    if case in ("float-for-int", "string-dtype", "category-dtype", "object-dtype"):
        # the same values in another type: the same predictions
        expected = penguins["model"].predict(raw)
        pd.testing.assert_frame_equal(got, expected, atol=1e-6)


def test_a_required_column_left_out_is_refused(penguins):
    with pytest.raises(Exception, match="year"):
        penguins["model"].predict(features(penguins).drop(columns=["year"]))


def test_automl_predict_takes_the_csv_and_its_variants(penguins, tmp_path):
    raw = features(penguins)
    expected = penguins["model"].predict(raw)
    for name, frame in [("train", pd.read_csv(penguins["csv"])), *variants(raw).items()]:
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        out = tmp_path / f"{name}.out.csv"
        result = CliRunner().invoke(
            main,
            [
                "predict",
                "--model",
                penguins["model_uri"],
                "--data",
                str(path),
                "--output",
                str(out),
                "--tracking-uri",
                penguins["uri"],
            ],
        )
        assert result.exit_code == 0, (name, result.output)
        got = pd.read_csv(out)
        assert len(got) == len(raw), name
        if name in ("train", "float-for-int", "object-dtype"):
            assert (got["prediction"] == expected["prediction"]).all(), name


def _records(frame: pd.DataFrame) -> str:
    return json.dumps({"dataframe_records": json.loads(frame.to_json(orient="records"))})


def _served_predictions(url: str, frame: pd.DataFrame) -> pd.DataFrame:
    return as_frame(invoke(url, _records(frame), timeout=60))


def _check_server(url: str, penguins: dict) -> None:
    raw = features(penguins)
    expected = penguins["model"].predict(raw)
    got = _served_predictions(url, raw)  # JSON records of the training CSV
    assert (got["prediction"] == expected["prediction"]).all()
    for case in ("float-for-int", "gap-in-int", "none-anywhere", "optional-left-out"):
        got = _served_predictions(url, variants(raw)[case])
        assert len(got) == len(raw), case


@pytest.mark.slow
def test_mlflow_models_serve_takes_json_records(penguins):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        penguins["model_uri"],
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with running_server(command, port, {"MLFLOW_TRACKING_URI": penguins["uri"]}) as url:
        _check_server(url, penguins)


def test_automl_serve_takes_json_records(penguins):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--model",
        penguins["model_uri"],
        "--port",
        str(port),
        "--tracking-uri",
        penguins["uri"],
    ]
    with running_server(command, port) as url:
        _check_server(url, penguins)
