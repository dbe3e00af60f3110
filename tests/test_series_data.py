"""The benchmark's synthetic series sets: shapes, determinism, balance, 1-NN bands, files."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import series_data as sd

FIXED = [  # generator, (n_train, n_test, T), classes
    (sd.gunpoint_like, (50, 150, 150), 2),
    (sd.italypower_like, (67, 1029, 24), 2),
    (sd.shapelets, (100, 300, 150), 3),
    (sd.frequency_classes, (150, 300, 200), 3),
    (sd.long_series, (100, 200, 500), 2),
]
IDS = [make.__name__ for make, _, _ in FIXED]


def _spread(y: np.ndarray, n_classes: int) -> int:
    counts = np.bincount(y, minlength=n_classes)
    return int(counts.max() - counts.min())


@pytest.mark.parametrize("make, shape, n_classes", FIXED, ids=IDS)
def test_univariate_shapes_dtypes_and_balance(make, shape, n_classes):
    n_train, n_test, steps = shape
    X_train, y_train, X_test, y_test = make(0)
    assert X_train.shape == (n_train, steps) and X_test.shape == (n_test, steps)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert np.isfinite(X_train).all() and np.isfinite(X_test).all()
    assert set(np.unique(y_train)) == set(np.unique(y_test)) == set(range(n_classes))
    assert _spread(y_train, n_classes) <= 1 and _spread(y_test, n_classes) <= 1


@pytest.mark.parametrize("make", [m for m, _, _ in FIXED], ids=IDS)
def test_univariate_is_deterministic_for_a_seed(make):
    first, again, other = make(3), make(3), make(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_sizes_can_be_chosen():
    X_train, y_train, X_test, y_test = sd.gunpoint_like(0, n_train=10, n_test=20)
    assert X_train.shape == (10, 150) and X_test.shape == (20, 150)
    assert len(y_train) == 10 and len(y_test) == 20


def test_variable_length_multichannel():
    data = sd.variable_length_multichannel(0)
    assert data.X_train.shape == (270, 26, 12) and data.X_test.shape == (370, 29, 12)
    assert data.X_train.dtype == data.X_test.dtype == np.float32
    assert data.y_train.dtype == data.lengths_train.dtype == np.int64
    assert data.lengths_train.min() == 7 and data.lengths_train.max() == 26
    assert data.lengths_test.min() >= 7 and data.lengths_test.max() == 29
    assert 1 <= (data.lengths_test > 26).sum() <= 40  # some test series outrun every train one
    for X, lengths in [(data.X_train, data.lengths_train), (data.X_test, data.lengths_test)]:
        padding = np.arange(X.shape[1])[None, :] >= lengths[:, None]  # (N, T)
        assert np.isnan(X[padding]).all() and np.isfinite(X[~padding]).all()
    assert _spread(data.y_train, 9) <= 1 and _spread(data.y_test, 9) <= 1
    again = sd.variable_length_multichannel(0)
    np.testing.assert_array_equal(again.X_test, data.X_test)
    np.testing.assert_array_equal(again.lengths_test, data.lengths_test)


def test_digits_rows_is_a_fixed_stratified_split():
    X_train, y_train, X_test, y_test = sd.digits_rows()
    assert X_train.shape == (1347, 8, 8) and X_test.shape == (450, 8, 8)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    counts = np.bincount(y_test, minlength=10)
    assert counts.min() >= 0.9 * counts.max()
    np.testing.assert_array_equal(sd.digits_rows()[3], y_test)


def test_one_nn_on_a_hand_made_case():
    X_train = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=np.float32)
    X_test = np.array([[0.1, 0.9, 0.0], [5.0, 0.0, 5.0]], dtype=np.float32)
    y = np.array([0, 1])
    assert sd.one_nn_accuracy(X_train, y, X_test, y) == 1.0
    assert sd.one_nn_accuracy(X_train, y, X_test, np.array([0, 0])) == 0.5


def test_znormalize_ignores_and_keeps_padding():
    X = np.array([[1.0, 3.0, np.nan], [2.0, 2.0, 2.0]])
    z = sd.znormalize(X)[..., 0]
    np.testing.assert_allclose(z[0, :2], [-1.0, 1.0])
    assert np.isnan(z[0, 2])
    np.testing.assert_array_equal(z[1], [0.0, 0.0, 0.0])  # a constant series


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_nn_is_fair_on_gunpoint_like(seed):
    # measured 0.86..0.93 over seeds 0-4 (GunPoint's own 1-NN ED: 0.913)
    assert 0.75 <= sd.one_nn_accuracy(*sd.gunpoint_like(seed)) <= 0.98


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_nn_is_weak_on_shifted_shapelets(seed):
    # measured 0.32..0.40 over seeds 0-4, for 3 classes (chance 0.33)
    assert sd.one_nn_accuracy(*sd.shapelets(seed)) < 0.6


def test_one_nn_handles_variable_lengths():
    data = sd.variable_length_multichannel(0)
    accuracy = sd.one_nn_accuracy(data.X_train, data.y_train, data.X_test, data.y_test, znorm=False)
    assert 0.85 <= accuracy <= 1.0  # measured 0.92..0.99 over seeds 0-5


def test_written_tsv_loads_as_univariate_sequences(tmp_path):
    from data import load_dataset

    data = sd.gunpoint_like(0, n_train=20, n_test=30)
    train, test = sd.write_split(tmp_path, "gunpoint", data)
    assert (train.name, test.name) == ("gunpoint_TRAIN.tsv", "gunpoint_TEST.tsv")
    for path, X, y in [(train, data[0], data[1]), (test, data[2], data[3])]:
        ds = load_dataset(str(path))
        assert ds.modality == "sequence"
        assert ds.X.shape == (len(X), 150, 1) and ds.n_features == 1
        np.testing.assert_array_equal(ds.X[..., 0], X)  # written without rounding
        np.testing.assert_array_equal(ds.y, y)


def test_written_npz_keeps_lengths_and_reads_as_sequences(tmp_path):
    from data import load_dataset

    data = sd.variable_length_multichannel(0, n_train=45, n_test=60)
    train, test = sd.write_split(tmp_path, "vowels", data)
    assert train.suffix == test.suffix == ".npz"
    for path, n, steps, lengths in [
        (train, 45, 26, data.lengths_train),
        (test, 60, 29, data.lengths_test),
    ]:
        ds = load_dataset(str(path))
        assert ds.modality == "sequence"
        assert ds.X.shape == (n, steps, 12) and ds.n_features == 12
        np.testing.assert_array_equal(ds.lengths, lengths)


def test_digits_rows_npz_is_read_as_sequences_not_images(tmp_path):
    from data import load_dataset

    train, _ = sd.write_split(tmp_path, "digits", sd.digits_rows())
    ds = load_dataset(str(train))
    assert ds.modality == "sequence" and ds.X.shape == (1347, 8, 8)


def test_write_tsv_refuses_multichannel(tmp_path):
    with pytest.raises(ValueError, match=r"univariate series \(N, T\), got shape \(2, 3, 4\)"):
        sd.write_tsv(tmp_path / "x.tsv", np.zeros((2, 3, 4)), np.zeros(2))
