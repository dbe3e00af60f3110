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
from data.corrections import parse_numbers
from data.tasks import label_strings
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


# ------------------------------------------------ vectorised paths keep the per-value results
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            np.array([1.0, -0.0, 0.0, np.nan, 2.5, 1e20]),
            ["1", "0", "0", "nan", "2.5", "1" + "0" * 20],
        ),
        (np.array([0.1, 3.0], dtype=np.float32), ["0.10000000149011612", "3"]),
        (np.array([3, -1, 3], dtype=np.int8), ["3", "-1", "3"]),
        (np.array([True, False, True]), ["True", "False", "True"]),
        (pd.Series([2, 10, 2], name="t"), ["2", "10", "2"]),
        (np.array([[1.0], [2.0]]), ["1", "2"]),
        (np.array(["a", " a", "a"], dtype=object), ["a", " a", "a"]),
        (
            np.array([1, "1", 1.0, True, None, np.nan], dtype=object),
            ["1", "1", "1", "True", "None", "nan"],
        ),
        ([2.0, "x"], ["2", "x"]),
    ],
    ids=["floats", "float32", "int8", "bool", "series", "2-D", "text", "mixed", "list"],
)
def test_label_strings(values, expected):
    assert label_strings(values).tolist() == expected


def test_duplicates_with_nan_signed_zero_bool_and_text():
    frame = pd.DataFrame(
        {
            "x": [np.nan, np.nan, 0.0, -0.0, 1.0, 1.0, 2.0, 2.0],
            "b": [True, True, False, False, True, True, False, False],
            "c": ["u", "u", "v", " v", None, None, "w", "W"],
            "t": [0, 0, 1, 1, 1, 0, 1, 1],
        }
    )
    cleaned, report = clean_dataset(_table(frame), CleaningConfig(), "classification")
    # NaN matches NaN, -0.0 matches 0.0, and corrections make ' v' and 'W' repeat 'v' and 'w'
    assert report.actions[-1] == "dropped 3 row(s) duplicating an earlier row"
    np.testing.assert_array_equal(cleaned.X["x"], [np.nan, 0.0, 1.0, 1.0, 2.0])
    # without corrections ' v' and 'v' differ, as do 'w' and 'W'
    cleaned, report = clean_dataset(
        _table(frame), CleaningConfig(fix_errors=False), "classification"
    )
    assert report.actions == ["dropped 1 row(s) duplicating an earlier row"]
    assert cleaned.X["b"].dtype == bool and cleaned.n_samples == 7


def test_duplicates_match_hashing_every_cell_as_text():
    """Number columns hashed by value find the rows that hashing each cell's text found."""
    rng = np.random.default_rng(0)
    n = 400
    mixed = [1, "1", 1.0, True, None]
    frame = pd.DataFrame(
        {
            "f": rng.choice([0.0, -0.0, 0.5, np.nan], n).astype(np.float32),
            "i": rng.integers(0, 2, n),
            "b": rng.integers(0, 2, n).astype(bool),
            "s": rng.choice(["a", "b", ""], n),
            "m": pd.Series([mixed[k] for k in rng.integers(0, len(mixed), n)], dtype=object),
            "t": rng.integers(0, 2, n),
        }
    )
    ds = _table(frame)
    cleaned, _ = clean_dataset(ds, CleaningConfig(fix_errors=False), "classification")
    hashed = pd.util.hash_pandas_object(ds.X.astype(object), index=False)
    keys = [f"{h}|{t}" for h, t in zip(hashed, label_strings(ds.y), strict=True)]
    kept = ~pd.Series(keys).duplicated().to_numpy()
    pd.testing.assert_frame_equal(cleaned.X, ds.X[kept].reset_index(drop=True))


def test_duplicates_need_the_same_label():
    frame = pd.DataFrame({"a": [1.5] * 4, "t": [1.0, 1.0, 2.0, 1.0]})
    cleaned, report = clean_dataset(_table(frame), CleaningConfig(), "classification")
    assert cleaned.y.tolist() == [1.0, 2.0] and report.rows_out == 2


@pytest.mark.parametrize("fix_errors", [True, False], ids=["fix", "no-fix"])
def test_constant_columns_nan_signed_zero_and_bool(fix_errors):
    frame = pd.DataFrame(
        {
            "nan": [np.nan] * 4,
            "zero": [0.0, -0.0, 0.0, -0.0],
            "flag": [True] * 4,
            "half": [1.0, np.nan, 1.0, 1.0],
            "word": ["k", "k", "k", "k"],
            "x": [1, 2, 3, 4],
            "t": [0, 1, 0, 1],
        }
    )
    _, report = clean_dataset(
        _table(frame), CleaningConfig(fix_errors=fix_errors), "classification"
    )
    assert report.dropped_columns == ["nan", "zero", "flag", "word"]


def test_parse_numbers_repeated_text_keeps_index():
    cells = [" 1,234 ", "1,234", "?", None, "", "3.5", "1,23", "3.5", "-2,000.5", "1e3"]
    s = pd.Series(cells * 3, index=np.arange(30) * 2 + 5)
    out = parse_numbers(s)
    assert out.index.equals(s.index) and out.dtype == np.float64
    expected = [1234.0, 1234.0, np.nan, np.nan, np.nan, 3.5, np.nan, 3.5, -2000.5, 1000.0]
    np.testing.assert_array_equal(out.to_numpy(), expected * 3)


def test_corrections_on_repeated_variants_log_counts():
    frame = pd.DataFrame(
        {
            "c": ["Red", " red", "RED", "red", "red", None, " ", "Blue", "blue"] * 2,
            "n": ["1", " 2 ", "3,000", "x", None, "4", "5", "6", "7"] * 2,
            "m": [1, "1", 1.0, True, " a", "A", None, 2, "b"] * 2,
        }
    )
    log: list[str] = []
    out = apply_corrections(frame, learn_corrections(frame), log)
    assert out["c"].fillna("-").tolist()[:9] == ["red"] * 5 + ["-", "-", "Blue", "Blue"]
    np.testing.assert_array_equal(out["n"][:5], [1.0, 2.0, 3000.0, np.nan, np.nan])
    assert out["m"].fillna("-").tolist()[:9] == ["1", "1", "1.0", "True", "A", "A", "-", "2", "b"]
    assert log == [
        "column 'c': 10 category spellings unified (case/spaces)",
        "column 'n': 14 numbers stored as text converted",
        "column 'n': 2 non-numeric values ('x') set to missing",
        "column 'm': 10 category spellings unified (case/spaces)",
    ]


def test_float_target_that_is_integral_and_text_encoder():
    y = np.array([0.0, 1.0, 2.0, np.nan] * 10, dtype=np.float32)
    assert detect_task(y) == "classification"
    frame = pd.DataFrame({"a": np.arange(40.0), "t": y})
    with pytest.warns(AutoMLWarning, match="dropped 10 of 40 rows"):
        cleaned, _ = clean_dataset(_table(frame), CleaningConfig(), "classification")
    enc = TargetEncoder("classification").fit(cleaned.y)
    assert enc.classes_.tolist() == ["0", "1", "2"]
    assert enc.transform(cleaned.y).tolist() == [0, 1, 2] * 10
    enc = TargetEncoder("classification").fit(np.array(["b", "a", "b"], dtype=object))
    assert enc.transform(np.array(["a", "b", "a", "b"], dtype=object)).tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match=r"unknown class label\(s\) 'c', 'd'; known classes: a, b"):
        enc.transform(["d", "a", "c", "d"])
