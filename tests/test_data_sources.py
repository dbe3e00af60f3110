"""Loading every kind of source, the modality decision, and the loader's error messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data import detect_task, list_builtin, load_dataset, sequence_lengths
from orchestrator.errors import ConfigError, DataError


def test_list_builtin_names_and_descriptions():
    names = dict(list_builtin())
    assert set(names) == {"digits", "breast_cancer", "wine", "iris", "diabetes"}
    assert "regression" in names["diabetes"] and "(8, 8, 1)" in names["digits"]


def test_builtin_digits_are_images_with_class_names():
    ds = load_dataset("builtin:digits")
    assert ds.modality == "image" and ds.X.shape == (1797, 8, 8, 1) and ds.X.dtype == np.float32
    assert ds.class_names == [str(i) for i in range(10)]
    assert "read as images" in ds.notes[0]
    assert detect_task(ds.y) == "classification"


def test_builtin_digits_for_fnn_and_rnn_families():
    flat = load_dataset("builtin:digits", family="fnn")
    assert flat.modality == "table" and list(flat.X.columns[:2]) == ["px0", "px1"]
    seq = load_dataset("builtin:digits", family="lstm")
    assert seq.modality == "sequence" and seq.X.shape == (1797, 8, 8)
    assert (seq.lengths == 8).all()


def test_builtin_tables():
    iris = load_dataset("builtin:iris")
    assert iris.modality == "table" and "sepal length (cm)" in iris.X.columns
    assert iris.class_names == ["setosa", "versicolor", "virginica"]
    diabetes = load_dataset("builtin:diabetes")
    assert detect_task(diabetes.y) == "regression" and diabetes.class_names is None


def test_unknown_builtin_suggests_a_name():
    with pytest.raises(DataError, match=r"'digit' \(did you mean 'digits'\?\); available: digits"):
        load_dataset("builtin:digit")


def test_csv_table_with_target(tiny_csv):
    ds = load_dataset(str(tiny_csv), target="label")
    assert ds.modality == "table" and ds.X.shape == (120, 3) and "label" not in ds.X.columns
    assert ds.X.loc[3, "x1"] == "?"  # read as-is: cleaning fixes it


def test_csv_target_errors(tiny_csv):
    with pytest.raises(DataError, match=r"requires --target; columns: x1, x2, color, label"):
        load_dataset(str(tiny_csv))
    with pytest.raises(DataError, match=r"'labl' not found .*did you mean 'label'.*columns: x1"):
        load_dataset(str(tiny_csv), target="labl")


def test_parquet_and_group_column(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "g": [0, 0, 1, 1], "t": [0, 1, 0, 1]})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    ds = load_dataset(str(path), target="t", group_column="g")
    assert list(ds.X.columns) == ["a"] and ds.groups.tolist() == [0, 0, 1, 1]


def test_missing_file_and_unsupported_format(tmp_path):
    with pytest.raises(DataError, match="data source not found: .*nope.csv"):
        load_dataset(str(tmp_path / "nope.csv"))
    bad = tmp_path / "data.xlsx"
    bad.write_text("x")
    with pytest.raises(DataError, match=r"unsupported data format '.xlsx'.*supported: .csv"):
        load_dataset(str(bad))
    with pytest.raises(ConfigError, match="data.modality must be one of"):
        load_dataset("builtin:iris", modality="graph")


def test_ucr_tsv_with_variable_lengths(tmp_path):
    path = tmp_path / "series.tsv"
    path.write_text("1\t0.1\t0.2\t0.3\t0.4\n2\t1.0\t2.0\tNaN\tNaN\n1\t5\t\t\t\n")
    ds = load_dataset(str(path))
    assert ds.modality == "sequence" and ds.X.shape == (3, 4, 1)
    assert ds.lengths.tolist() == [4, 2, 1] and ds.y.tolist() == [1, 2, 1]
    assert np.isnan(ds.X[1, 2:]).all()


def test_ucr_csv_without_header_and_header_csv_needs_target(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("0,1,2,3\n1,4,5\n")
    ds = load_dataset(str(path))
    assert ds.X.shape == (2, 3, 1) and ds.lengths.tolist() == [3, 2]
    header = tmp_path / "h.csv"
    header.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="requires --target; columns: a, b, c"):
        load_dataset(str(header))


def test_npz_sequences_with_lengths(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 5, 2)).astype(np.float32)
    lengths = np.array([5, 3, 2, 5, 1, 4])
    path = tmp_path / "seq.npz"
    np.savez(path, X=X, y=np.arange(6) % 2, lengths=lengths)
    ds = load_dataset(str(path))
    assert ds.modality == "sequence" and ds.lengths.tolist() == lengths.tolist()
    assert np.isnan(ds.X[1, 3:]).all() and not np.isnan(ds.X[1, :3]).any()
    assert sequence_lengths(ds.X).tolist() == lengths.tolist()
    assert "sequence lengths are given" in ds.notes[0]


@pytest.mark.parametrize(
    ("shape", "kwargs", "modality", "out_shape"),
    [
        ((4, 8, 8), {}, "image", (4, 8, 8, 1)),
        ((4, 6, 8), {}, "sequence", (4, 6, 8)),
        ((4, 8, 8), {"family": "gru"}, "sequence", (4, 8, 8)),
        ((4, 6, 3), {"family": "cnn"}, "image", (4, 6, 3, 1)),
        ((4, 8, 8), {"modality": "sequence"}, "sequence", (4, 8, 8)),
        ((4, 8, 8), {"modality": "table"}, "table", (4, 64)),
        ((4, 8, 8, 3), {}, "image", (4, 8, 8, 3)),
        ((4, 8, 8, 3), {"family": "transformer"}, "sequence", (4, 8, 24)),
        ((4, 8, 8, 3), {"family": "fnn"}, "table", (4, 192)),
    ],
    ids=["auto-img", "auto-seq", "gru", "cnn", "forced-seq", "forced-table", "4d", "4d-seq", "fnn"],
)
def test_npz_modality_resolution(tmp_path, shape, kwargs, modality, out_shape):
    path = tmp_path / "a.npz"
    np.savez(path, X=np.random.default_rng(0).normal(size=shape), y=np.arange(shape[0]))
    ds = load_dataset(str(path), **kwargs)
    assert ds.modality == modality and ds.X.shape == out_shape


def test_npz_modality_entry_and_table(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, X=np.ones((3, 9, 9)), y=np.arange(3), modality=np.array("sequence"))
    assert load_dataset(str(path)).modality == "sequence"
    np.savez(path, X=np.ones((3, 2)), y=np.arange(3))
    ds = load_dataset(str(path))
    assert ds.modality == "table" and list(ds.X.columns) == ["x0", "x1"]
    with pytest.raises(DataError, match="is a table and cannot be read as modality 'image'"):
        load_dataset(str(path), modality="image")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.ones((4, 3, 3)), "y": np.ones(3)}, r"X has shape \(4, 3, 3\) but y has shape"),
        ({"X": np.ones(4), "y": np.ones(4)}, r"X must be 2-D .*got shape \(4,\)"),
        ({"X": np.ones((4, 3, 3)), "y": np.ones(4), "lengths": np.ones(2)}, r"lengths has shape"),
        ({"X": np.ones((4, 3))}, r"needs arrays 'X' and 'y'; found: X"),
    ],
    ids=["len", "ndim", "lengths", "no-y"],
)
def test_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def _png(path, size, color):
    Image.new("RGB" if isinstance(color, tuple) else "L", size, color).save(path)


def test_image_folder_grayscale_and_resize(tmp_path):
    for label, shade in (("cat", 10), ("dog", 200)):
        (tmp_path / label).mkdir()
        for i in range(3):
            _png(tmp_path / label / f"{i}.png", (6, 5), shade + i)
    _png(tmp_path / "dog" / "big.png", (12, 10), 50)
    ds = load_dataset(str(tmp_path))
    assert ds.modality == "image" and ds.X.shape == (7, 5, 6, 1)
    assert ds.class_names == ["cat", "dog"] and ds.y.tolist().count("dog") == 4
    assert "1 resized" in ds.notes[0]


def test_image_folder_color_and_empty(tmp_path):
    (tmp_path / "a").mkdir()
    _png(tmp_path / "a" / "x.png", (4, 4), (255, 0, 0))
    _png(tmp_path / "a" / "y.png", (4, 4), 7)
    ds = load_dataset(str(tmp_path))
    assert ds.X.shape == (2, 4, 4, 3) and ds.X[0, 0, 0].tolist() == [255, 0, 0]
    empty = tmp_path / "empty"
    (empty / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="no PNG or JPEG images"):
        load_dataset(str(empty))
