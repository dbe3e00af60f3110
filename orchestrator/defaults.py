"""Sensible default search spaces, used when a search is started without ``search.space``."""

from __future__ import annotations

from typing import Any

from orchestrator.config import Config, apply_overrides

SHARED: dict[str, dict[str, Any]] = {
    "training.optimizer.lr": {"loguniform": [3.0e-4, 3.0e-3]},
    "model.dropout": {"uniform": [0.0, 0.4]},
    "training.batch_size": {"choice": [32, 64, 128]},
}
BY_FAMILY: dict[str, dict[str, dict[str, Any]]] = {
    "fnn": {"model.hidden_sizes": {"choice": [[128], [256, 128], [512, 256]]}},
    "cnn": {"model.channels": {"choice": [[32, 64], [32, 64, 128]]}},
    "cnn1d": {"model.channels": {"choice": [[32, 64], [64, 128]]}},
    "rnn": {"model.hidden_size": {"choice": [64, 128]}},
    "lstm": {"model.hidden_size": {"choice": [64, 128]}},
    "gru": {"model.hidden_size": {"choice": [64, 128]}},
    "transformer": {"model.d_model": {"choice": [32, 64]}},
}
GRID: dict[str, dict[str, Any]] = {
    "training.optimizer.lr": {"grid": [1.0e-3, 3.0e-3]},
    "model.dropout": {"grid": [0.0, 0.2]},
}


def with_default_space(config: Config, family: str) -> Config:
    """Fill an empty ``search.space`` with a default for ``family`` (finite under grid)."""
    if config.search.space:
        return config
    if config.search.algorithm == "grid":
        space = dict(GRID)
    else:
        space = {**SHARED, **BY_FAMILY.get(family, {})}
    return apply_overrides(config, {"search.space": space})
