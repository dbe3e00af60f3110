"""Sensible default search spaces, used when a search is started without ``search.space``."""

from __future__ import annotations

from typing import Any

from orchestrator.config import Config, apply_overrides

SHARED: dict[str, dict[str, Any]] = {
    "training.optimizer.lr": {"loguniform": [3.0e-4, 3.0e-3]},
    "model.dropout": {"uniform": [0.0, 0.4]},
}
# batch sizes to search where "auto" (a tenth of the rows, 16 to 64) is not left to decide
BATCH_SIZES = {"training.batch_size": {"choice": [32, 64, 128]}}
BY_FAMILY: dict[str, dict[str, dict[str, Any]]] = {
    "fnn": {"model.hidden_sizes": {"choice": [[128], [256, 128], [512, 256]]}, **BATCH_SIZES},
    "cnn": {"model.channels": {"choice": [[32, 64], [32, 64, 128]]}, **BATCH_SIZES},
    "cnn1d": {"model.channels": {"choice": [[32, 64], [64, 128]]}},
    "resnet1d": {"model.channels": {"choice": [[32, 64, 64], [64, 128, 128]]}},
    "inception": {"model.depth": {"choice": [3, 6]}},
    "rnn": {"model.hidden_size": {"choice": [64, 128]}},
    "lstm": {"model.hidden_size": {"choice": [64, 128]}},
    "gru": {"model.hidden_size": {"choice": [64, 128]}},
    "transformer": {"model.d_model": {"choice": [32, 64]}},
}
# model: auto searches these families where the data's modality has more than one good one.
# Sequences: the two deep classifiers that lead the UCR/UEA benchmarks (Ismail Fawaz et al.,
# 2019 and 2020), and the temporal CNN, the cheapest. Keys that only one family reads are
# sampled for every trial and ignored by the others.
AUTO_FAMILIES: dict[str, list[str]] = {"sequence": ["resnet1d", "inception", "cnn1d"]}
FAMILY_KEYS: dict[str, dict[str, Any]] = {
    "sequence": {
        "model.channels": {"choice": [[32, 64, 64], [64, 128, 128]]},  # resnet1d, cnn1d
        "model.depth": {"choice": [3, 6]},  # inception
    }
}
GRID: dict[str, dict[str, Any]] = {
    "training.optimizer.lr": {"grid": [1.0e-3, 3.0e-3]},
    "model.dropout": {"grid": [0.0, 0.2]},
}


def default_space(config: Config, family: str, modality: str) -> dict[str, dict[str, Any]]:
    """The space searched when ``search.space`` is empty (finite under grid)."""
    searched = config.model.family == "auto" and modality in AUTO_FAMILIES
    if config.search.algorithm == "grid":
        space = dict(GRID)
        if searched:
            space["model.family"] = {"grid": AUTO_FAMILIES[modality]}
        return space
    if searched:
        return {
            "model.family": {"choice": AUTO_FAMILIES[modality]},
            **SHARED,
            **FAMILY_KEYS[modality],
        }
    return {**SHARED, **BY_FAMILY.get(family, {})}


def with_default_space(config: Config, family: str, modality: str = "table") -> Config:
    """Fill an empty ``search.space`` with :func:`default_space`."""
    if config.search.space:
        return config
    return apply_overrides(config, {"search.space": default_space(config, family, modality)})
