"""A grid's trials start dearest first (LPT): the cost estimate, the order, and a real Tune run."""

from __future__ import annotations

import dataclasses

import pytest
from ray import tune

from orchestrator.pipeline import prepare_run
from orchestrator.search import run_search, trial_data
from orchestrator.space import grid_points, validate_space
from orchestrator.trialorder import MAX_POINTS, estimated_cost, longest_first
from tests.conftest import tiny_config

SPACE = {
    "training.optimizer.lr": {"grid": [1e-3, 1e-2]},
    "model.hidden_sizes": {"grid": [[8], [64, 64], [16]]},
}


def prepared_for(config):
    return trial_data(prepare_run(config).prepared, config)


def test_cost_grows_with_the_model_the_epochs_and_the_steps():
    config = tiny_config()
    base = estimated_cost(config, "fnn", (4,), 3, 100)
    wider = config.model_copy(
        update={"model": config.model.model_copy(update={"hidden_sizes": [64, 64]})}
    )
    longer = config.model_copy(
        update={"training": config.training.model_copy(update={"epochs": 8})}
    )
    smaller_batches = config.model_copy(
        update={"training": config.training.model_copy(update={"batch_size": 4})}
    )
    assert estimated_cost(wider, "fnn", (4,), 3, 100) > base
    assert estimated_cost(longer, "fnn", (4,), 3, 100) == pytest.approx(2 * base)
    assert estimated_cost(smaller_batches, "fnn", (4,), 3, 100) > base


def test_the_grid_is_ordered_dearest_first_and_ties_keep_the_grid_order():
    config = tiny_config(**{"search.algorithm": "grid", "search.space": SPACE})
    points = grid_points(validate_space(config))
    order = longest_first(points, config, prepared_for(config))
    assert sorted(map(str, order)) == sorted(map(str, points))  # the same trials, reordered
    assert [p["model.hidden_sizes"] for p in order] == ["[64, 64]"] * 2 + ["[16]"] * 2 + ["[8]"] * 2
    # equal costs (the learning rate changes nothing) keep the grid's order
    assert [p["training.optimizer.lr"] for p in order] == [1e-3, 1e-2] * 3


def test_no_order_without_fitted_folds_or_for_a_huge_grid():
    config = tiny_config(**{"search.algorithm": "grid", "search.space": SPACE})
    prepared = prepared_for(config)
    points = grid_points(validate_space(config))
    assert longest_first(points, config, dataclasses.replace(prepared, folds=None)) is None
    assert longest_first(points * (MAX_POINTS // len(points) + 1), config, prepared) is None


@pytest.mark.usefixtures("ray_session")
def test_a_grid_search_starts_its_dearest_trials_first(tmp_path):
    started: list[str] = []

    class StartOrder(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            started.append(trial.config["model.hidden_sizes"])

    config = tiny_config(
        **{"search.algorithm": "grid", "search.space": SPACE, "search.max_concurrent": 1}
    )
    result = run_search(
        config, name="order", storage=str(tmp_path), refit=False, callbacks=[StartOrder()]
    )
    assert len(result.trials) == 6 and all(t.status == "TERMINATED" for t in result.trials)
    assert started == ["[64, 64]"] * 2 + ["[16]"] * 2 + ["[8]"] * 2
    seen = {
        (t.config["training.optimizer.lr"], tuple(t.config["model.hidden_sizes"]))
        for t in result.trials
    }
    assert len(seen) == 6  # every point once
