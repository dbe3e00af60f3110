"""Cleaning, task detection and target encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data import (
    Dataset,
    TargetEncoder,
    apply_corrections,
    clean_dataset,
    detect_task,
    learn_corrections,
    load_dataset,
    validate_target,
)
from orchestrator.config import CleaningConfig
from orchestrator.errors import AutoMLWarning, DataError


def _table(frame: pd.DataFrame, target: str = "t") -> Dataset:
    frame = frame.copy()
    return Dataset(frame, frame.pop(target).to_numpy(), "table", "test")


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (["a", "b", "a", "b"], "classification"),
        ([True, False, True, False], "classification"),
        ([0, 1, 2] * 10, "classification"),
        ([0.0, 1.0, np.nan] * 10, "classification"),
        (np.arange(30), "regression"),
        (np.linspace(0, 1, 30), "regression"),
        (list(range(25)) * 3, "regression"),
    ],
    ids=["text", "bool", "ints", "float-ints", "unique-ints", "floats", "many-ints"],
)
def test_detect_task(y, task):
    assert detect_task(np.asarray(y, dtype=object if isinstance(y[0], str) else None)) == task


def test_detect_task_forced_regression_on_text():
    y = pd.Series(["1", "abc", "2"], name="price")
    with pytest.raises(
        DataError, match="regression needs a numeric target, column 'price' has values like 'abc'"
    ):
        detect_task(y, "regression")
    assert detect_task(np.arange(5.0), "classification") == "classification"


def test_validate_target_single_class():
    with pytest.raises(DataError, match="target has a single class 'x'; classification needs"):
        validate_target(np.array(["x", "x", None], dtype=object), "classification")


def test_target_encoder_classification_numeric_order():
    enc = TargetEncoder("classification").fit(np.array([10, 2, 1, 2]))
    assert enc.classes_.tolist() == ["1", "2", "10"] and enc.n_classes_ == 3
    assert enc.transform([2.0, 10, 1]).tolist() == [1, 2, 0]
    assert enc.transform([2.0]).dtype == np.int64
    assert enc.inverse_transform([2, 0]).tolist() == ["10", "1"]
    with pytest.raises(DataError, match="unknown class label.*'7'"):
        enc.transform([7])


def test_target_encoder_regression_roundtrip():
    y = np.array([1.0, 2.0, 3.0, 6.0])
    enc = TargetEncoder("regression").fit(y)
    z = enc.transform(y)
    assert z.dtype == np.float32 and abs(z.mean()) < 1e-6
    np.testing.assert_allclose(enc.inverse_transform(z), y, rtol=1e-6)


def test_clean_messy_csv(tiny_csv):
    ds = load_dataset(str(tiny_csv), target="label")
    cleaned, report = clean_dataset(ds, CleaningConfig(), "classification")
    assert cleaned.X["x1"].dtype == np.float64 and np.isnan(cleaned.X.loc[3, "x1"])
    assert cleaned.X.loc[5, "color"] == "red"
    text = " ".join(report.actions)
    assert "119 numbers stored as text converted" in text and "'?'" in text
    assert "category spellings unified" in text
    assert report.to_dict()["rows_in"] == 120 == report.rows_out


def test_clean_numbers_as_text_tokens_case_and_constant():
    frame = pd.DataFrame(
        {
            "n": ["1,234", " 3.5 ", "4e3", "?", "n/a", "7", "8", "9", "10", "11"],
            "c": ["Red", " red", "RED", "red", "blue", "Blue", "blue", "red", "red", "blue"],
            "k": [5] * 10,
            "t": ["a", "b"] * 5,
        }
    )
    cleaned, report = clean_dataset(_table(frame), CleaningConfig(), "classification")
    assert cleaned.X["n"].tolist()[:3] == [1234.0, 3.5, 4000.0]
    assert cleaned.X["n"].isna().sum() == 2
    assert set(cleaned.X["c"]) == {"red", "blue"}
    assert "k" not in cleaned.X.columns and report.dropped_columns == ["k"]


def test_corrections_replay_on_raw_rows():
    frame = pd.DataFrame({"n": ["1", "2", "3,000", "4", "x"], "c": ["Red", "red", "red", "b", "b"]})
    corrections = learn_corrections(frame)
    raw = pd.DataFrame({"n": [" 4,500 ", "?"], "c": [" RED", "B"]})
    fixed = apply_corrections(raw, corrections)
    assert fixed["n"].tolist()[0] == 4500.0 and np.isnan(fixed["n"].tolist()[1])
    assert fixed["c"].tolist() == ["red", "b"]


def test_missing_target_warns_and_duplicates_dropped():
    frame = pd.DataFrame({"a": [1, 1, 2, 3, 4], "t": ["x", "x", None, "y", "y"]})
    with pytest.warns(AutoMLWarning, match="dropped 1 of 5 rows with a missing target"):
        cleaned, report = clean_dataset(_table(frame), CleaningConfig(), "classification")
    assert cleaned.n_samples == 3 and report.rows_out == 3
    assert any("duplicating" in a for a in report.actions)


def test_array_duplicates_by_row_hash():
    X = np.zeros((4, 3, 3, 1), dtype=np.float32)
    X[1] = X[3] = 1
    ds = Dataset(X, np.array([0, 1, 0, 1]), "image")
    cleaned, _ = clean_dataset(ds, CleaningConfig(), "classification")
    assert cleaned.n_samples == 2


def test_drop_rows_with_missing_values():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3, 4], "b": ["u", "v", None, "w"], "t": [0, 1, 0, 1]})
    cfg = CleaningConfig(numeric_impute="drop", categorical_impute="drop")
    cleaned, report = clean_dataset(_table(frame), cfg, "classification")
    assert cleaned.X["a"].tolist() == [1.0, 4.0] and len(report.actions) == 2


def test_cleaning_errors():
    frame = pd.DataFrame({"a": [np.nan, np.nan], "t": [0, 1]})
    with pytest.raises(DataError, match="no rows left after cleaning"):
        clean_dataset(_table(frame), CleaningConfig(numeric_impute="drop"), "classification")
    frame = pd.DataFrame({"a": [1, 2, 3], "t": ["1,500", " 2 ", "3"]})
    cleaned, _ = clean_dataset(_table(frame), CleaningConfig(), "regression")
    assert cleaned.y.tolist() == [1500.0, 2.0, 3.0]
    frame = pd.DataFrame({"a": [1, 2, 3], "t": ["1", "2", "abc"]})
    with pytest.raises(DataError, match="regression needs a numeric target"):
        clean_dataset(_table(frame), CleaningConfig(), "regression")
    frame = pd.DataFrame({"a": [1, 2, 3], "t": ["x", "X", " x"]})
    with pytest.raises(DataError, match="target has a single class 'x'"):
        clean_dataset(_table(frame), CleaningConfig(), "classification")
