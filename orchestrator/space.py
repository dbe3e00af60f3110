"""The YAML search space ─► Ray Tune domains. The only module that knows the space spec.

A space maps dotted config keys to one distribution each::

    training.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
    model.hidden_sizes: {choice: [[64], [128, 64]]}

Options that are not scalars (lists such as ``[128, 64]``) travel through Ray Tune and Optuna as
their JSON text, because Optuna's categorical distribution only takes scalars;
:func:`decode_point` turns a sampled point back into config overrides.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from orchestrator.config import Config, apply_overrides
from orchestrator.errors import ConfigError, did_you_mean

FINITE = ("choice", "grid")
RANGES = {"uniform": 2, "loguniform": 2, "randint": 2, "qrandint": 3, "quniform": 3}
DISTRIBUTIONS = (*FINITE, *RANGES)


def _encode(option: Any) -> Any:
    return json.dumps(option) if isinstance(option, list | dict) else option


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def decode_point(point: dict[str, Any]) -> dict[str, Any]:
    """A sampled point (Tune's config dict) as dotted config overrides."""
    return {key: _decode(value) for key, value in point.items()}


def _parse_entry(key: str, spec: Any) -> tuple[str, list[Any]]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(
            f"search.space.{key} must be a mapping with one distribution, e.g. "
            f"{{choice: [a, b]}}; allowed distributions: {', '.join(DISTRIBUTIONS)}; got {spec!r}"
        )
    kind, args = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"search.space.{key}: unknown distribution '{kind}'{did_you_mean(kind, DISTRIBUTIONS)}"
            f"; allowed: {', '.join(DISTRIBUTIONS)}"
        )
    if not isinstance(args, list) or not args:
        raise ConfigError(f"search.space.{key}.{kind} needs a non-empty list, got {args!r}")
    if kind in RANGES:
        n = RANGES[kind]
        if len(args) != n or not all(isinstance(a, int | float) for a in args):
            form = "[low, high]" if n == 2 else "[low, high, q]"
            raise ConfigError(f"search.space.{key}.{kind} takes {form} numbers, got {args!r}")
        if not args[0] < args[1]:
            raise ConfigError(f"search.space.{key}.{kind} needs low < high, got {args!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise ConfigError(f"search.space.{key}.loguniform needs low > 0, got {args!r}")
    return kind, args


def validate_space(config: Config, algorithm: str | None = None) -> dict[str, tuple[str, list]]:
    """Check every key, distribution and option before anything starts; returns parsed entries."""
    algorithm = algorithm or config.search.algorithm
    space = config.search.space
    if not space:
        raise ConfigError(
            "search.space is empty; give at least one key, e.g. "
            "training.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}"
        )
    parsed: dict[str, tuple[str, list]] = {}
    for key, spec in space.items():
        kind, args = _parse_entry(key, spec)
        if algorithm == "grid" and kind not in FINITE:
            raise ConfigError(
                f"search.algorithm 'grid' takes only finite values (choice or grid), but "
                f"search.space.{key} is {kind}; use random or bayes for ranges"
            )
        # every finite option and both range ends must make a valid config
        samples = args if kind in FINITE else args[:2]
        for value in samples:
            if kind in ("randint", "qrandint"):
                value = int(value)
            try:
                apply_overrides(config, {key: value})
            except ConfigError as err:
                raise ConfigError(
                    f"search.space.{key}: option {value!r} is invalid: {err}"
                ) from None
        parsed[key] = (kind, args)
    return parsed


def grid_size(parsed: dict[str, tuple[str, list]]) -> int:
    return math.prod(len(args) for kind, args in parsed.values() if kind in FINITE)


def grid_points(parsed: dict[str, tuple[str, list]]) -> list[dict[str, Any]]:
    """Every combination of a finite space, as encoded points."""
    keys = list(parsed)
    options = [[_encode(o) for o in parsed[k][1]] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*options)]


def to_tune_space(parsed: dict[str, tuple[str, list]], algorithm: str) -> dict[str, Any]:
    """Ray Tune domains for ``param_space``; only the searched keys appear."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, (kind, args) in parsed.items():
        if kind in FINITE:
            options = [_encode(o) for o in args]
            if algorithm == "grid" or (kind == "grid" and algorithm == "random"):
                out[key] = tune.grid_search(options)
            else:
                out[key] = tune.choice(options)
        elif kind == "uniform":
            out[key] = tune.uniform(*args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        elif kind == "randint":
            out[key] = tune.randint(int(args[0]), int(args[1]))
        elif kind == "qrandint":
            out[key] = tune.qrandint(int(args[0]), int(args[1]), int(args[2]))
        elif kind == "quniform":
            out[key] = tune.quniform(*args)
    return out


def expected_trials(parsed: dict[str, tuple[str, list]], algorithm: str, num_samples: int) -> int:
    """How many trials Ray Tune creates: grid entries multiply random search's samples."""
    if algorithm == "grid":
        return grid_size(parsed)
    if algorithm == "random":
        return num_samples * math.prod(len(a) for k, a in parsed.values() if k == "grid")
    return num_samples
