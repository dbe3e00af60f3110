"""The YAML search space: validation before anything starts, encoding of list options."""

from __future__ import annotations

import pytest

from orchestrator.config import Config, apply_overrides
from orchestrator.errors import ConfigError
from orchestrator.space import decode_point, grid_points, grid_size, to_tune_space, validate_space


def with_space(space, algorithm="random"):
    return apply_overrides(Config(), {"search.space": space, "search.algorithm": algorithm})


def test_grid_points_cover_every_combination_and_decode_lists():
    config = with_space(
        {
            "training.optimizer.lr": {"grid": [1e-3, 3e-3]},
            "model.hidden_sizes": {"choice": [[64], [128, 64]]},
        },
        "grid",
    )
    parsed = validate_space(config)
    assert grid_size(parsed) == 4
    points = [decode_point(p) for p in grid_points(parsed)]
    assert {(p["training.optimizer.lr"], tuple(p["model.hidden_sizes"])) for p in points} == {
        (1e-3, (64,)),
        (1e-3, (128, 64)),
        (3e-3, (64,)),
        (3e-3, (128, 64)),
    }
    # every decoded point is a valid config
    for p in points:
        apply_overrides(config, p)


@pytest.mark.parametrize(
    ("space", "algorithm", "message"),
    [
        (
            {"training.optimizer.lr": {"uniform": [0.1, 0.2]}},
            "grid",
            r"'grid' takes only finite values .*search.space.training.optimizer.lr is uniform",
        ),
        (
            {"training.optimizer.lr": {"logunifrm": [1e-4, 1e-2]}},
            "random",
            r"unknown distribution 'logunifrm' \(did you mean 'loguniform'",
        ),
        ({"training.optimizer.lr": {"loguniform": [0, 1e-2]}}, "random", "needs low > 0"),
        ({"training.optimizer.lr": {"uniform": [0.3, 0.1]}}, "random", "needs low < high"),
        (
            {"model.dropout": {"choice": [0.1, 1.5]}},
            "random",
            r"search.space.model.dropout: option 1.5 is invalid",
        ),
        ({"model.hiden": {"choice": [1, 2]}}, "random", r"unknown key 'model.hiden'"),
        ({"model.dropout": [0.1, 0.2]}, "random", "must be a mapping with one distribution"),
        ({}, "random", "search.space is empty"),
    ],
    ids=[
        "range-under-grid",
        "typo-distribution",
        "log-zero",
        "low-high",
        "bad-option",
        "bad-key",
        "not-a-mapping",
        "empty",
    ],
)
def test_bad_spaces_fail_before_anything_starts(space, algorithm, message):
    with pytest.raises(ConfigError, match=message):
        validate_space(with_space(space, algorithm))


def test_tune_domains_by_algorithm():
    from ray.tune.search.sample import Categorical, Float

    parsed = validate_space(
        with_space(
            {
                "training.optimizer.lr": {"loguniform": [1e-4, 1e-2]},
                "model.hidden_sizes": {"choice": [[64], [128, 64]]},
            }
        )
    )
    space = to_tune_space(parsed, "bayes")
    assert isinstance(space["training.optimizer.lr"], Float)
    assert isinstance(space["model.hidden_sizes"], Categorical)
    # lists travel as JSON text so Optuna's categorical distribution accepts them
    assert space["model.hidden_sizes"].categories == ["[64]", "[128, 64]"]
    grid = to_tune_space(
        validate_space(with_space({"model.dropout": {"grid": [0.0, 0.2]}}, "grid")), "grid"
    )
    assert grid["model.dropout"] == {"grid_search": [0.0, 0.2]}
