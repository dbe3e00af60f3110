"""Cross-validation and the train pipeline: no leakage, honest early stopping, refit, test sets,
variable-length sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.crossval import cross_validate
from orchestrator.pipeline import prepare_run, run_training
from tests.conftest import tiny_config


def test_preprocessing_is_fitted_on_each_training_fold_only(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["y"] = np.where(frame.a > 0, "p", "n")
    frame.loc[60:, ["a", "b"]] += 5.0  # the second half is shifted: leakage would show
    frame.to_csv(tmp_path / "shift.csv", index=False)
    config = tiny_config(
        **{
            "data.source": str(tmp_path / "shift.csv"),
            "data.target": "y",
            "split.folds": 3,
            "training.epochs": 1,
            "split.strategy": "kfold",
        }
    )
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    list(cv)
    ds = run.prepared.dataset
    for fold, (train_idx, val_idx) in zip(cv.folds, cv.splits, strict=True):
        assert not set(train_idx) & set(val_idx)
        train_x = fold.preprocessor.transform(ds.subset(train_idx).X)
        val_x = fold.preprocessor.transform(ds.subset(val_idx).X)
        # standard scaling learnt from the training fold: mean 0 there, not on the held-out fold
        np.testing.assert_allclose(train_x.mean(axis=0), 0.0, atol=1e-5)
        assert np.abs(val_x.mean(axis=0)).max() > 0.05


def test_early_stopping_watches_an_inner_split_not_the_held_out_fold():
    config = tiny_config(
        **{
            "split.folds": 3,
            "training.epochs": 40,
            "training.early_stopping.enabled": True,
            "training.early_stopping.patience": 2,
            "split.inner_val_size": 0.2,
        }
    )
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    reports = list(cv)
    for fold, (train_idx, val_idx) in zip(cv.folds, cv.splits, strict=True):
        trainer = fold.trainer
        # the trainer sees only the fold's training part, split into fit and early-stop rows
        assert len(trainer.train_data) + len(trainer.es_data) == len(train_idx)
        assert len(trainer.es_data) == pytest.approx(0.2 * len(train_idx), abs=2)
        assert len(fold.val) == len(val_idx)
    assert cv.result.refit_epochs == int(round(float(np.median(cv.result.best_epochs))))
    # every epoch reports the fold-mean validation metrics; the last one the CV summary
    assert all("val_accuracy" in r for r in reports)
    final = reports[-1]
    assert final["cv_accuracy_mean"] == pytest.approx(
        np.mean([f["accuracy"] for f in cv.result.per_fold])
    )
    assert final["val_accuracy"] == pytest.approx(final["cv_accuracy_mean"])


def test_out_of_fold_predictions_cover_every_sample():
    config = tiny_config(**{"split.folds": 3, "training.epochs": 2})
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    list(cv)
    oof = cv.result.oof_output
    assert oof.shape == (run.prepared.dataset.n_samples, 3)
    assert not np.isnan(oof).any()
    np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-5)


def test_fixed_test_set_replaces_the_split(tmp_path):
    rng = np.random.default_rng(1)

    def table(n):
        frame = pd.DataFrame({"a": rng.normal(size=n), "c": rng.choice(["u", "v"], size=n)})
        frame["y"] = np.where(frame.a > 0, "p", "n")
        return frame

    table(100).to_csv(tmp_path / "train.csv", index=False)
    test = table(37)
    test.loc[0, "c"] = "never-seen"
    test.to_csv(tmp_path / "test.csv", index=False)
    config = tiny_config(
        **{
            "data.source": str(tmp_path / "train.csv"),
            "data.target": "y",
            "data.test_source": str(tmp_path / "test.csv"),
        }
    )
    result = run_training(config)
    assert result.run.test.n_samples == 37
    assert result.run.prepared.dataset.n_samples == 100
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0


def test_variable_length_sequences_train_above_chance(tmp_path):
    rng = np.random.default_rng(0)
    n, t = 240, 12
    lengths = rng.integers(4, t + 1, size=n)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, t, 2)).astype(np.float32)
    X[:, :, 0] += np.where(y == 1, 1.0, -1.0)[:, None]
    for i, length in enumerate(lengths):
        X[i, length:] = np.nan
    np.savez(tmp_path / "seq.npz", X=X, y=y, lengths=lengths)
    config = tiny_config(
        **{
            "data.source": str(tmp_path / "seq.npz"),
            "model.family": "gru",
            "model.hidden_size": 16,
            "training.epochs": 8,
        }
    )
    result = run_training(config)
    assert result.run.prepared.dataset.modality == "sequence"
    assert result.cv.summary()["accuracy"]["mean"] > 0.75
    assert result.test_metrics["accuracy"] > 0.75


@pytest.mark.parametrize("threads", [1, 2])
def test_training_num_threads_sets_torchs_threads_while_it_trains(monkeypatch, threads):
    """``training.num_threads`` holds for the folds and the refit, and is undone after."""
    import torch

    from models import FusedTrainer, Trainer

    seen = []
    for cls in (Trainer, FusedTrainer):
        original = cls.train_epoch

        def spy(self, *args, _original=original, **kwargs):
            seen.append(torch.get_num_threads())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "train_epoch", spy)
    before = torch.get_num_threads()
    other = 2 if before != 2 else 3
    torch.set_num_threads(other)
    try:
        run_training(
            tiny_config(
                **{"training.num_threads": threads, "training.epochs": 2, "search.refit": "best"}
            )
        )
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert len(seen) >= 4 and set(seen) == {threads}  # 2 CV epochs and 2 refit epochs
    assert after == other
