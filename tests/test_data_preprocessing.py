"""Preprocessors (fit on the training part only), sequence lengths and image augmentation."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from data import (
    ImagePreprocessor,
    SequencePreprocessor,
    TabularPreprocessor,
    augment_images,
    fit_preprocessor,
    sequence_lengths,
)
from orchestrator.config import AugmentConfig, CleaningConfig, DataConfig
from orchestrator.errors import DataError


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "cnt": rng.integers(0, 5, size=n).astype(float),
            "col": rng.choice(["red", "green", "blue"], size=n),
        }
    )


def test_tabular_fit_on_train_part_only():
    """Learned statistics come from the training rows, not from the shifted validation rows."""
    frame = _frame(60)
    frame.loc[40:, "num"] += 100.0  # the validation part is shifted
    train, val = frame.iloc[:40], frame.iloc[40:]
    pre = fit_preprocessor(train, "table", DataConfig())
    scaler = pre.column_transformer_.named_transformers_["num"].named_steps["scale"]
    np.testing.assert_allclose(scaler.mean_, train[["num", "cnt"]].mean().to_numpy())
    assert not np.allclose(scaler.mean_, frame[["num", "cnt"]].mean().to_numpy())
    out = pre.transform(val)
    assert out[:, 0].mean() > 50  # the shift survives: nothing was learned from validation


def test_tabular_output_names_and_raw_rows():
    pre = fit_preprocessor(_frame(), "table", DataConfig())
    assert pre.feature_names_out_ == ["num", "cnt", "col_blue", "col_green", "col_red"]
    assert pre.output_shape_ == (5,)
    raw = pd.DataFrame({"col": [" RED", "purple"], "num": ["1,000", "?"], "cnt": [1, None]})
    raw["extra"] = 1
    out = pre.transform(raw)
    assert out.dtype == np.float32 and out.shape == (2, 5) and np.isfinite(out).all()
    assert out[0, 4] == 1.0 and out[1, 2:].sum() == 0.0  # canonical 'red'; unknown ignored
    with pytest.raises(DataError, match=r"missing column\(s\): cnt"):
        pre.transform(raw.drop(columns=["cnt"]))


@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust", "none"])
@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_tabular_options_and_pickle(scaling, encoding):
    frame = _frame()
    frame.loc[0, "num"] = np.nan
    frame.loc[1, "col"] = None
    cfg = DataConfig(
        scaling=scaling,
        encoding=encoding,
        cleaning=CleaningConfig(numeric_impute="drop", categorical_impute="missing"),
    )
    pre = fit_preprocessor(frame, "table", cfg)
    again = pickle.loads(pickle.dumps(pre))
    out = again.transform(frame)
    np.testing.assert_array_equal(out, pre.transform(frame))
    assert np.isfinite(out).all() and out.shape == (len(frame), *pre.output_shape_)
    assert TabularPreprocessor().get_params()["scaling"] == "standard"  # no logic in __init__


def test_image_preprocessor_channels_first_and_shape_check():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 255, size=(10, 6, 5, 3)).astype(np.float32)
    pre = fit_preprocessor(X[:8], "image", DataConfig())
    assert isinstance(pre, ImagePreprocessor) and pre.output_shape_ == (3, 6, 5)
    np.testing.assert_allclose(pre.offset_, X[:8].mean(axis=(0, 1, 2)), rtol=1e-5)
    out = pre.transform(X)
    assert out.shape == (10, 3, 6, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[:8].mean(axis=(0, 2, 3)), 0, atol=1e-4)
    with pytest.raises(DataError, match=r"images are 6x4x3 .*fitted on 6x5x3"):
        pre.transform(X[:, :, :4])
    minmax = fit_preprocessor(X, "image", DataConfig(scaling="minmax")).transform(X)
    assert minmax.min() >= 0 and minmax.max() <= 1


def test_sequence_lengths_and_preprocessor():
    X = np.ones((3, 4, 2), dtype=np.float32)
    X[0, 2:] = np.nan
    X[1, 1:] = np.nan
    X[2] = np.nan
    X[1, 3, 0] = 5.0  # a value after a gap still counts
    assert sequence_lengths(X).tolist() == [2, 4, 1]
    rng = np.random.default_rng(0)
    seqs = rng.normal(3.0, 2.0, size=(20, 6, 2)).astype(np.float32)
    seqs[:10, 4:] = np.nan
    pre = fit_preprocessor(seqs, "sequence", DataConfig())
    assert isinstance(pre, SequencePreprocessor) and pre.output_shape_ == (6, 2)
    np.testing.assert_allclose(pre.offset_, np.nanmean(seqs, axis=(0, 1)), rtol=1e-5)
    out = pre.transform(seqs)
    assert out.dtype == np.float32 and (out[:10, 4:] == 0).all() and np.isfinite(out).all()
    # any length: the batch keeps its own (the models pad per batch and mask)
    assert pre.transform(seqs[:, :3]).shape == (20, 3, 2)
    longer = pre.transform(rng.normal(size=(2, 60, 2)))
    assert longer.shape == (2, 60, 2) and np.isfinite(longer).all()
    with pytest.raises(DataError, match="3 features per step, the model expects 2"):
        pre.transform(rng.normal(size=(2, 6, 3)))
    pickle.loads(pickle.dumps(pre))


def test_augment_identity_when_disabled_and_deterministic_when_seeded():
    batch = torch.rand(6, 1, 8, 10)
    gen = torch.Generator().manual_seed(0)
    assert augment_images(batch, AugmentConfig(), gen) is batch
    cfg = AugmentConfig(enabled=True, rotation=20, shift=0.2, hflip=True, vflip=True)
    a = augment_images(batch, cfg, torch.Generator().manual_seed(1))
    b = augment_images(batch, cfg, torch.Generator().manual_seed(1))
    c = augment_images(batch, cfg, torch.Generator().manual_seed(2))
    assert a.shape == batch.shape and a.dtype == batch.dtype
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, batch)


def test_augment_flip_only_is_exact():
    batch = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    cfg = AugmentConfig(enabled=True, rotation=0, shift=0, hflip=True)
    out = augment_images(batch, cfg, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.allclose(out[i], batch[i]) or torch.allclose(out[i], batch[i].flip(-1))


@pytest.mark.parametrize("strategy", ["median", "mean", "constant"])
def test_numeric_imputer_matches_simple_imputer(strategy) -> None:
    """NumericImputer (nan-aware numpy) gives SimpleImputer's statistics and output, an
    all-missing column included (kept, filled with 0 or the constant)."""
    from sklearn.impute import SimpleImputer

    from data.imputing import NumericImputer

    rng = np.random.default_rng(3)
    train = pd.DataFrame(rng.normal(size=(50, 4)), columns=list("abcd"))
    train.iloc[::3, 1] = np.nan
    train["d"] = np.nan
    test = pd.DataFrame(rng.normal(size=(9, 4)), columns=list("abcd"))
    test.iloc[::2, 0] = np.nan
    test.iloc[1, 3] = np.nan
    ours = NumericImputer(strategy=strategy, fill_value=7.0).fit(train)
    ref = SimpleImputer(strategy=strategy, fill_value=7.0, keep_empty_features=True).fit(train)
    np.testing.assert_allclose(ours.statistics_, ref.statistics_.astype(float))
    np.testing.assert_allclose(ours.transform(test), ref.transform(test))
    assert not np.isnan(ours.transform(test)).any()
    assert list(ours.get_feature_names_out()) == list("abcd")
    with pytest.raises(ValueError, match="strategy must be one of"):
        NumericImputer(strategy="mode").fit(train)


def test_series_norm_is_on_for_univariate_and_per_series():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(8, 30)).astype(np.float32)
    # the same shapes at other levels and amplitudes, one with a gap after step 20
    shifted = base * rng.uniform(0.5, 5, size=(8, 1)) + rng.uniform(-50, 50, size=(8, 1))
    shifted[0, 20:] = np.nan
    pre = fit_preprocessor(shifted, "sequence", DataConfig())
    assert pre.series_norm_  # auto: one feature per step
    out = pre.transform(shifted)[..., 0]
    assert np.abs(out[1:].mean(axis=1)).max() < 1e-4
    np.testing.assert_allclose(out[1:].std(axis=1), 1.0, rtol=1e-3)
    assert (out[0, 20:] == 0).all() and abs(out[0, :20].mean()) < 1e-4
    reference = fit_preprocessor(base, "sequence", DataConfig()).transform(base)[1:, :, 0]
    np.testing.assert_allclose(out[1:], reference, atol=1e-4)  # level and scale are gone
    multi = fit_preprocessor(rng.normal(size=(4, 10, 3)), "sequence", DataConfig())
    assert not multi.series_norm_  # auto leaves multivariate series to the channel scaling
    forced = DataConfig(series_norm="off")
    assert not fit_preprocessor(shifted, "sequence", forced).series_norm_
