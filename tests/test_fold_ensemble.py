"""The fold ensemble (``search.refit``): the k cross-validation fold models as the final model,
in ``automl train`` and in a search on real Ray, where the best trial's fold models reach the
driver and get back the preprocessing the driver fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.config import uses_fold_ensemble
from orchestrator.crossval import cross_validate
from orchestrator.pipeline import final_model, prepare_run
from orchestrator.predictor import FoldEnsemble
from orchestrator.search import run_search
from tests.conftest import tiny_config


def accuracy(model, data) -> float:
    labels = model.target.transform(data.y)
    return float(np.mean(model.predict_output(data.X).argmax(axis=1) == labels))


@pytest.mark.parametrize(
    ("refit", "folds", "expected"),
    [("auto", 2, False), ("auto", 3, True), ("folds", 2, True), ("best", 5, False)],
)
def test_auto_uses_the_folds_from_three_on(refit, folds, expected):
    config = tiny_config(**{"search.refit": refit, "split.folds": folds})
    assert uses_fold_ensemble(config) is expected
    assert not uses_fold_ensemble(tiny_config(**{"search.refit": "folds", "split.folds": 1}))


def test_the_members_are_the_fold_models_at_their_best_epoch():
    """Each member predicts its own fold's validation rows exactly as cross-validation scored
    them (the out-of-fold output), and the ensemble's output is the members' mean."""
    config = tiny_config(
        **{"search.refit": "folds", "split.folds": 3, "training.epochs": 6},
        **{"training.early_stopping.enabled": True, "training.early_stopping.patience": 2},
    )
    run = prepare_run(config)
    cv = cross_validate(run.prepared, run.config)
    for _ in cv:
        pass
    result = final_model(run, run.config, cv)
    ensemble = result.predictor
    assert isinstance(ensemble, FoldEnsemble) and result.kind == "folds" and result.epochs is None
    assert len(ensemble.members) == 3
    X = run.prepared.dataset.X
    for member, (_, va) in zip(ensemble.members, cv.splits, strict=True):
        got = member.predict_output(X.iloc[va])
        np.testing.assert_allclose(got, cv.result.oof_output[va], atol=1e-5)
    test_X = run.test.X
    mean = np.mean([m.predict_output(test_X) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.predict_output(test_X), mean, atol=1e-12)
    frame = ensemble.predict(test_X)
    assert list(frame.columns[:1]) == ["prediction"] and len(frame) == len(test_X)
    assert result.test_metrics["accuracy"] == pytest.approx(accuracy(ensemble, run.test))


def test_a_column_with_gaps_in_any_fold_may_be_left_out(tmp_path):
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "y": rng.choice(["p", "q"], n)}
    )
    frame.loc[5, "b"] = np.nan  # one gap: some folds' training parts never see it
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    config = tiny_config(
        **{"data.source": str(path), "data.target": "y", "split.folds": 3},
        **{"search.refit": "folds", "training.epochs": 2},
    )
    run = prepare_run(config)
    cv = cross_validate(run.prepared, run.config)
    for _ in cv:
        pass
    ensemble = final_model(run, run.config, cv).predictor
    seen = [getattr(f.preprocessor, "optional_columns_", []) for f in cv.folds]
    assert ["b"] in seen and [] in seen  # the folds disagree ...
    # ... the ensemble takes rows without b (every member imputes it), and the fold models'
    # own preprocessing is left as it was
    out = ensemble.predict(frame[["a"]].head(4))
    assert len(out) == 4 and out["prediction"].isin(["p", "q"]).all()
    assert [getattr(f.preprocessor, "optional_columns_", []) for f in cv.folds] == seen


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("space_key", ["training.optimizer.lr", "data.scaling"])
def test_a_search_registers_the_best_trials_fold_models(tmp_path, space_key):
    """Folds fitted once in the driver (a space over the learning rate) or by each trial (a
    space over the scaling): either way the final model is the best trial's k fold models,
    with fitted preprocessing, and only its models stay in the search's folder."""
    values = {"training.optimizer.lr": [1e-3, 3e-2], "data.scaling": ["standard", "minmax"]}
    config = tiny_config(
        **{"split.folds": 3, "training.epochs": 3, "search.num_samples": 2},
        **{"search.algorithm": "grid", "search.space": {space_key: {"grid": values[space_key]}}},
    )
    result = run_search(config, name="ens", storage=str(tmp_path), refit=True)
    ensemble = result.refit.predictor
    assert isinstance(ensemble, FoldEnsemble) and len(ensemble.members) == 3
    assert result.refit.kind == "folds"
    test = result.run.test
    for member in ensemble.members:
        assert member.preprocessor.transform(test.X).shape[0] == len(test.X)
    kept = sorted(p.name for p in (tmp_path / "ens" / "fold_models").iterdir())
    assert kept == [f"{result.best.trial_id}.pkl"]
    assert result.refit.test_metrics["accuracy"] == pytest.approx(accuracy(ensemble, test))
