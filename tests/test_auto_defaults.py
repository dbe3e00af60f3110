"""Defaults decided for the data: "auto" training settings, series augmentation, family search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.augment import augment_series
from models import build_model
from models.dense import dense_layers
from orchestrator.autoconfig import resolve_auto, resolve_training
from orchestrator.config import (
    AugmentConfig,
    Config,
    ModelConfig,
    TrainingConfig,
    apply_overrides,
)
from orchestrator.defaults import default_space
from orchestrator.errors import ConfigError
from orchestrator.folds import effective_family


def test_auto_training_settings_follow_the_modality_and_the_rows():
    small = resolve_auto(Config(), "sequence", n_fit=36)
    t = small.training
    assert (t.batch_size, t.epochs, t.early_stopping.patience) == (16, 150, 40)
    assert t.scheduler.name == "cosine" and small.data.augment.enabled is True
    large = resolve_auto(Config(), "sequence", n_fit=5000)
    t = large.training
    assert (t.batch_size, t.epochs, t.early_stopping.patience) == (64, 60, 15)
    assert large.data.augment.enabled is False  # large series sets train without it
    table = resolve_auto(Config(), "table", n_fit=300)
    assert (table.training.batch_size, table.training.epochs) == (30, 60)
    assert table.training.scheduler.name == "none" and table.data.augment.enabled is False


def test_explicit_settings_are_kept_and_resolving_twice_changes_nothing():
    config = apply_overrides(
        Config(),
        {"training.batch_size": 8, "training.epochs": 5, "data.augment.enabled": False},
    )
    once = resolve_auto(config, "sequence", n_fit=36)
    assert (once.training.batch_size, once.training.epochs) == (8, 5)
    assert once.data.augment.enabled is False
    assert resolve_auto(once, "sequence", n_fit=9999) == once


def test_a_trainer_given_auto_decides_from_its_own_data():
    cfg = resolve_training(TrainingConfig(), "table", n_fit=1000)
    assert cfg.batch_size == 64 and cfg.epochs == 60


@pytest.mark.parametrize("value", [0, -3, "lots", 2.5])
def test_a_bad_count_is_one_clear_message(value):
    with pytest.raises(
        ConfigError, match=r"training.epochs: must be a whole number of at least 1, or 'auto', got"
    ):
        apply_overrides(Config(), {"training.epochs": value})


def test_batch_norm_auto_is_off_in_the_fnn_only_and_the_skip_is_linear():
    fnn = build_model(ModelConfig(family="fnn"), (6,), 3)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in fnn.modules())
    assert {m.p for m in fnn.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    head = build_model(ModelConfig(family="cnn1d"), (8, 2), 3)
    assert {m.p for m in head.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    assert isinstance(fnn.skip, torch.nn.Linear) and dense_layers(fnn) is None  # autograd path
    cnn = build_model(ModelConfig(family="cnn"), (1, 8, 8), 3)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in cnn.modules())
    plain = build_model(ModelConfig(family="fnn", linear_skip=False), (6,), 3)
    assert plain.skip is None and dense_layers(plain) is not None  # the hand-batched path


def test_series_augmentation_keeps_lengths_padding_and_its_seed():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 30, 2, generator=g)
    lengths = torch.tensor([30, 12, 5, 1])
    x = x.masked_fill(torch.arange(30)[None, :, None] >= lengths[:, None, None], 0.0)
    cfg = AugmentConfig(enabled=True)
    a = augment_series(x, cfg, torch.Generator().manual_seed(1), lengths)
    b = augment_series(x, cfg, torch.Generator().manual_seed(1), lengths)
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    pad = torch.arange(30)[None, :] >= lengths[:, None]
    assert (a[pad] == 0).all()  # nothing leaks past a series' length
    assert augment_series(x, AugmentConfig(enabled=False), g, lengths) is x
    # window slicing alone is a stretch of the series: values stay within its range
    only_slice = AugmentConfig(enabled=True, jitter=0.0, scaling=0.0, window_slice=0.5)
    s = augment_series(x, only_slice, torch.Generator().manual_seed(2), lengths)
    for i, n in enumerate(lengths.tolist()):
        assert s[i, :n].min() >= x[i, :n].min() - 1e-6 and s[i, :n].max() <= x[i, :n].max() + 1e-6


def test_model_auto_searches_the_sequence_families():
    space = default_space(Config(), "resnet1d", "sequence")
    assert space["model.family"] == {"choice": ["resnet1d", "inception", "cnn1d"]}
    assert "training.batch_size" not in space  # auto decides it for small series sets
    grid = default_space(apply_overrides(Config(), {"search.algorithm": "grid"}), "x", "sequence")
    assert grid["model.family"] == {"grid": ["resnet1d", "inception", "cnn1d"]}
    chosen = apply_overrides(Config(), {"model.family": "gru"})
    assert "model.family" not in default_space(chosen, "gru", "sequence")  # the user's family
    table = default_space(Config(), "fnn", "table")
    assert "model.family" not in table and "training.batch_size" in table


def test_a_trial_trains_its_sampled_family():
    class Prepared:
        family = "resnet1d"  # what auto resolved to for the data

    sampled = apply_overrides(Config(), {"model.family": "inception"})
    assert effective_family(sampled, Prepared()) == "inception"
    assert effective_family(Config(), Prepared()) == "resnet1d"


def test_yaml_on_off_reads_as_the_series_norm_words():
    assert apply_overrides(Config(), {"data.series_norm": False}).data.series_norm == "off"
    assert apply_overrides(Config(), {"data.series_norm": True}).data.series_norm == "on"


def test_series_norm_off_keeps_levels():
    from data.preprocessing import SequencePreprocessor

    X = np.stack([np.full((10,), 5.0), np.full((10,), -5.0)])[..., None].astype(np.float32)
    on = SequencePreprocessor(series_norm="on").fit(X).transform(X)
    off = SequencePreprocessor(series_norm="off").fit(X).transform(X)
    assert np.allclose(on, 0.0) and not np.allclose(off[0], off[1])


@pytest.mark.parametrize(
    ("modality", "steps", "family"),
    [
        ("sequence", 8, "resnet1d"),
        ("sequence", 40, "resnet1d"),  # within resnet1d's receptive field
        ("sequence", 41, "inception"),  # longer: InceptionTime's longer kernels
        ("sequence", 500, "inception"),
        ("table", None, "fnn"),
        ("image", None, "cnn"),
    ],
)
def test_model_auto_picks_the_family_by_modality_and_series_length(modality, steps, family):
    from orchestrator.pipeline import resolve_family

    assert resolve_family("auto", modality, steps) == family
    assert resolve_family("gru", "sequence", steps) == "gru"  # an explicit family is kept


def test_a_long_series_file_gets_inception_and_says_why(tmp_path):
    from orchestrator.pipeline import prepare_run

    rng = np.random.default_rng(0)
    path = tmp_path / "long.npz"
    np.savez(path, X=rng.normal(size=(40, 120, 1)).astype(np.float32), y=rng.integers(0, 2, 40))
    run = prepare_run(apply_overrides(Config(), {"data.source": str(path)}))
    assert run.prepared.family == "inception"
    assert "model auto: sequence data, series of up to 120 steps, so family 'inception'" in (
        run.notes
    )
