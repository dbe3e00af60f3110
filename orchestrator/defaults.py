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
# 2019 and 2020), and the temporal CNN, the cheapest. Each family's trials search its own keys
# (BY_FAMILY) besides the shared ones: a conditional space.
AUTO_FAMILIES: dict[str, list[str]] = {"sequence": ["resnet1d", "inception", "cnn1d"]}
GRID: dict[str, dict[str, Any]] = {
    "training.optimizer.lr": {"grid": [1.0e-3, 3.0e-3]},
    "model.dropout": {"grid": [0.0, 0.2]},
}


def default_space(config: Config, family: str, modality: str) -> dict[str, dict[str, Any]]:
    """The space searched when ``search.space`` is empty (finite under grid)."""
    searched = config.model.family == "auto" and modality in AUTO_FAMILIES
    space = dict(GRID) if config.search.algorithm == "grid" else dict(SHARED)
    if searched:
        kind = "grid" if config.search.algorithm == "grid" else "choice"
        return {"model.family": {kind: AUTO_FAMILIES[modality]}, **space}
    if config.search.algorithm == "grid":
        return space
    return {**space, **BY_FAMILY.get(family, {})}


def with_default_space(config: Config, family: str, modality: str = "table") -> Config:
    """Fill an empty ``search.space`` with :func:`default_space`, and give each searched
    family without its own entry in ``search.space_by_family`` its default keys (none in the
    default grid, which stays small)."""
    if not config.search.space:
        space = default_space(config, family, modality)
        config = apply_overrides(config, {"search.space": space})
        if config.search.algorithm == "grid":
            families = searched(config)
            config = apply_overrides(
                config, {"search.space_by_family": dict.fromkeys(families, {})}
            )
    families = searched(config)
    given = config.search.space_by_family
    missing = [f for f in families if f not in given]
    if not missing:
        return config
    shared = config.search.space  # a key searched for every family is not one family's own
    own = {f: {k: v for k, v in BY_FAMILY.get(f, {}).items() if k not in shared} for f in missing}
    filled = {**given, **own}
    return apply_overrides(config, {"search.space_by_family": filled})


def searched(config: Config) -> list[str]:
    """The families ``search.space`` searches through ``model.family`` (choice or grid)."""
    entry = config.search.space.get("model.family")
    if not isinstance(entry, dict) or len(entry) != 1:
        return []
    kind, options = next(iter(entry.items()))
    if kind not in ("choice", "grid") or not isinstance(options, list):
        return []
    return [o for o in options if isinstance(o, str)]
