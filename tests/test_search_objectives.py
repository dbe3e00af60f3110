"""Issue 24 parts 1, 4 and 5 on a real local Ray and a real MLflow store: the family as a
hyperparameter (a conditional space: each trial searches only its family's keys), two
objectives (the Pareto front, its tags, the pick) and a warm start from an earlier search."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from mlflow import MlflowClient

from orchestrator.search import run_search
from orchestrator.trials import dominates, objective_values
from tests.conftest import tiny_config
from tests.test_tracking_fixtures import store_template  # noqa: F401  (a fixture)

BY_FAMILY = {
    "gru": {"model.hidden_size": {"choice": [8, 16]}},
    "cnn1d": {"model.channels": {"choice": [[8], [16, 16]]}},
}
FAMILY_KEYS = {"model.hidden_size", "model.channels"}


@pytest.fixture(scope="module")
def series_file(tmp_path_factory):
    """120 univariate series of 12 steps: a sine (class 1) or noise (class 0)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    t = np.linspace(0, 2 * np.pi, 12)
    X = rng.normal(0, 0.5, (120, 12, 1)) + (y[:, None] * np.sin(t))[:, :, None]
    path = tmp_path_factory.mktemp("series") / "sine.npz"
    np.savez(path, X=X.astype("float32"), y=y)
    return path


def series_config(path, **overrides):
    return tiny_config(
        **{
            "data.source": str(path),
            "data.modality": "sequence",
            "training.epochs": 2,
            "search.space": {
                "model.family": {"choice": ["gru", "cnn1d"]},
                "training.optimizer.lr": {"loguniform": [1e-3, 1e-2]},
            },
            "search.space_by_family": BY_FAMILY,
            **overrides,
        }
    )


def tracked(tmp_path, template, **overrides):
    db = tmp_path / "store.db"
    shutil.copyfile(template, db)
    return {"tracking.enabled": True, "tracking.tracking_uri": f"sqlite:///{db}", **overrides}


def trial_runs(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`automl.role` = 'trial'")
    return {r.data.tags["automl.trial_id"]: r for r in runs}


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("algorithm", ["bayes", "random"])
def test_a_search_over_families_suggests_and_records_only_active_keys(
    series_file,
    tmp_path,
    store_template,  # noqa: F811
    algorithm,
):
    options = tracked(tmp_path, store_template, **{"tracking.experiment": "families"})
    config = series_config(series_file, **{"search.algorithm": algorithm, "search.num_samples": 5})
    from orchestrator.config import apply_overrides

    config = apply_overrides(config, options)
    result = run_search(config, name="families", storage=str(tmp_path), refit=False)
    assert len(result.trials) == 5
    families = set()
    for trial in result.trials:
        family = trial.config["model.family"]
        families.add(family)
        own = set(BY_FAMILY[family])
        assert own <= set(trial.config)  # its own key was searched ...
        assert not (FAMILY_KEYS - own) & set(trial.config)  # ... and no other family's
    assert families == {"gru", "cnn1d"}  # 5 trials, seed 0: both families come up
    runs = trial_runs(options["tracking.tracking_uri"], "families")
    assert set(runs) == {t.trial_id for t in result.trials}
    for trial in result.trials:
        params = runs[trial.trial_id].data.params
        family = trial.config["model.family"]
        assert params["model.family"] == family
        other = (FAMILY_KEYS - set(BY_FAMILY[family])).pop()
        assert other not in params  # an inactive key is not logged as if searched
        for key, value in trial.config.items():
            assert params[key] == (json.dumps(value) if isinstance(value, list) else str(value))


@pytest.mark.usefixtures("ray_session")
def test_a_grid_over_families_runs_each_familys_own_points_once(series_file, tmp_path):
    config = series_config(
        series_file,
        **{
            "search.algorithm": "grid",
            "search.space": {
                "model.family": {"grid": ["gru", "cnn1d"]},
                "training.optimizer.lr": {"grid": [1e-3, 1e-2]},
            },
        },
    )
    result = run_search(config, name="grid-families", storage=str(tmp_path), refit=False)
    points = sorted(json.dumps(t.config, sort_keys=True) for t in result.trials)
    expected = sorted(
        json.dumps({"model.family": f, "training.optimizer.lr": lr, key: option}, sort_keys=True)
        for f, own in BY_FAMILY.items()
        for key, spec in own.items()
        for option in spec["choice"]
        for lr in (1e-3, 1e-2)
    )
    assert points == expected  # 2 x 2 points per family, each once, nothing else


def test_a_family_key_given_for_a_family_not_searched_is_refused(series_file):
    from orchestrator.errors import ConfigError
    from orchestrator.space import SearchSpace

    config = series_config(series_file, **{"search.space_by_family": {**BY_FAMILY, "lstm": {}}})
    with pytest.raises(ConfigError, match="lstm, which model.family does not search"):
        SearchSpace.of(config)


def front_of(trials, metrics, modes):
    signs = [1 if m == "max" else -1 for m in modes]
    scored = {
        t.trial_id: tuple(s * v for s, v in zip(signs, objective_values(t, metrics), strict=True))
        for t in trials
        if objective_values(t, metrics) is not None
    }
    return {a for a, va in scored.items() if not any(dominates(vb, va) for vb in scored.values())}


@pytest.mark.usefixtures("ray_session")
def test_two_objectives_give_a_pareto_front_tagged_in_mlflow(tmp_path, store_template):  # noqa: F811
    from orchestrator.config import apply_overrides

    options = tracked(tmp_path, store_template, **{"tracking.experiment": "pareto"})
    config = tiny_config(
        **{
            "search.algorithm": "grid",
            "search.metrics": ["val_accuracy", "n_params"],
            "search.space": {"model.hidden_sizes": {"grid": [[2], [16], [64]]}},
            "search.space_by_family": {},
        }
    )
    config = apply_overrides(config, options)
    result = run_search(config, name="pareto", storage=str(tmp_path), refit=True)
    metrics, modes = ["val_accuracy", "n_params"], ["max", "min"]
    assert result.objectives == list(zip(metrics, modes, strict=True))
    front = front_of(result.trials, metrics, modes)
    payload = result.to_json()
    assert {p["trial_id"] for p in payload["pareto_front"]} == front
    smallest = min(result.trials, key=lambda t: t.metrics["n_params"])
    assert smallest.trial_id in front  # nothing has fewer parameters
    # tradeoff: the fewest parameters among trials within 0.005 of the best accuracy
    best_acc = max(t.cv["accuracy"]["mean"] for t in result.trials if t.trial_id in front)
    near = [
        t
        for t in result.trials
        if t.trial_id in front and t.cv["accuracy"]["mean"] >= best_acc - 0.005
    ]
    assert result.best.trial_id == min(near, key=lambda t: t.metrics["n_params"]).trial_id
    assert [p["picked"] for p in payload["pareto_front"]].count(True) == 1
    runs = trial_runs(options["tracking.tracking_uri"], "pareto")
    for trial in result.trials:
        assert runs[trial.trial_id].data.tags["pareto"] == str(trial.trial_id in front).lower()
    parent = MlflowClient(options["tracking.tracking_uri"]).get_run(
        runs[result.best.trial_id].data.tags["mlflow.parentRunId"]
    )
    assert json.loads(parent.data.tags["automl.objectives"]) == [list(p) for p in result.objectives]
    assert result.refit is not None  # the picked trial's model was kept and tested
    # every search's report is an artifact of its parent run; automl report draws it again
    client = MlflowClient(options["tracking.tracking_uri"])
    assert "search_report.html" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    from click.testing import CliRunner

    from orchestrator.cli import main

    page = tmp_path / "report.html"
    uri = options["tracking.tracking_uri"]
    out = CliRunner().invoke(
        main, ["report", "--experiment", "pareto", "--tracking-uri", uri, "--output", str(page)]
    )
    assert out.exit_code == 0, out.output
    assert "Pareto front" in page.read_text()


@pytest.mark.usefixtures("ray_session")
def test_bayes_with_two_objectives_measures_predict_ms(tmp_path):
    config = tiny_config(
        **{
            "search.algorithm": "bayes",
            "search.num_samples": 3,
            "search.metrics": ["val_accuracy", "predict_ms"],
            "search.space": {"model.hidden_sizes": {"choice": [[4], [128, 128]]}},
        }
    )
    result = run_search(config, name="mo-bayes", storage=str(tmp_path), refit=False)
    assert len(result.trials) == 3
    for trial in result.trials:
        assert 0 < trial.metrics["predict_ms"] < 1000
    assert result.pareto and result.best in result.pareto


@pytest.mark.usefixtures("ray_session")
def test_a_warm_start_seeds_bayes_from_an_earlier_search(tmp_path, store_template):  # noqa: F811
    from orchestrator.config import apply_overrides
    from orchestrator.search import prepare_search

    options = tracked(tmp_path, store_template, **{"tracking.experiment": "first"})
    space = {
        "training.optimizer.lr": {"loguniform": [1e-3, 1e-1]},
        "model.dropout": {"uniform": [0.0, 0.4]},
    }
    base = tiny_config(**{"search.algorithm": "bayes", "search.num_samples": 3}, **{})
    base = apply_overrides(base, {**options, "search.space": space})
    first = run_search(base, name="first", storage=str(tmp_path), refit=False)
    assert len(first.trials) == 3

    later = {"tracking.experiment": "later", "search.num_samples": 2}
    cold = apply_overrides(base, {**later, "tracking.experiment": "cold"})
    warm = apply_overrides(base, {**later, "search.warm_start": "first"})
    plan = prepare_search(warm, "warm", str(tmp_path))
    assert len(plan.warm) == 3  # the earlier search's trials, read from MLflow
    cold_result = run_search(cold, name="cold", storage=str(tmp_path), refit=False)
    warm_result = run_search(warm, name="warm", storage=str(tmp_path), refit=False)
    assert len(warm_result.trials) == 2  # the earlier trials are not run again
    earlier = [t.config for t in first.trials]
    assert all(t.config not in earlier for t in warm_result.trials)
    assert warm_result.trials[0].config != cold_result.trials[0].config


def test_a_warm_start_from_other_data_is_one_line(tmp_path, store_template):  # noqa: F811
    from orchestrator.errors import AutoMLError
    from orchestrator.search import prepare_search

    config = tiny_config(
        **tracked(tmp_path, store_template),
        **{"search.algorithm": "bayes", "search.warm_start": "nothing-here"},
    )
    with pytest.raises(AutoMLError, match="no experiment named 'nothing-here'"):
        prepare_search(config, "w", str(tmp_path))


@pytest.mark.usefixtures("ray_session")
def test_search_flags_pick_and_warm_start_reach_the_config(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["search", "--data", "builtin:iris", "--no-tracking", "--algorithm", "random"]
    out = CliRunner().invoke(main, [*args, "--warm-start", "earlier", "--pick", "first"])
    assert out.exit_code == 2
    assert "error: --warm-start seeds a bayes search; search.algorithm is 'random'" in out.output
    out = CliRunner().invoke(main, [*args, "--pick", "fastest"])
    assert out.exit_code == 2 and "'tradeoff', 'first', 'second'" in out.output
