"""The YAML search space ─► Ray Tune domains. The only module that knows the space spec.

A space maps dotted config keys to one distribution each::

    training.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
    model.hidden_sizes: {choice: [[64], [128, 64]]}

Where ``model.family`` is searched, each family has its own entries too
(``search.space_by_family``), searched only in that family's trials: the space is then
conditional, and a trial's point holds only its active keys.

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
    return {_decode_key(key): _decode(value) for key, value in point.items()}


FAMILY_KEY = "model.family"
# a family's own key, as Optuna names it: one parameter per family (its options may differ)
FAMILY_SEP = ":"


def _decode_key(key: str) -> str:
    return key.split(FAMILY_SEP, 1)[1] if FAMILY_SEP in key else key


def _parse_entry(label: str, spec: Any) -> tuple[str, list[Any]]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(
            f"{label} must be a mapping with one distribution, e.g. "
            f"{{choice: [a, b]}}; allowed distributions: {', '.join(DISTRIBUTIONS)}; got {spec!r}"
        )
    kind, args = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{label}: unknown distribution '{kind}'{did_you_mean(kind, DISTRIBUTIONS)}"
            f"; allowed: {', '.join(DISTRIBUTIONS)}"
        )
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{label}.{kind} needs a non-empty list, got {args!r}")
    if kind in RANGES:
        n = RANGES[kind]
        if len(args) != n or not all(isinstance(a, int | float) for a in args):
            form = "[low, high]" if n == 2 else "[low, high, q]"
            raise ConfigError(f"{label}.{kind} takes {form} numbers, got {args!r}")
        if not args[0] < args[1]:
            raise ConfigError(f"{label}.{kind} needs low < high, got {args!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise ConfigError(f"{label}.loguniform needs low > 0, got {args!r}")
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
    return {key: _checked(config, algorithm, key, spec) for key, spec in space.items()}


def _checked(
    config: Config, algorithm: str, key: str, spec: Any, where: str = "search.space."
) -> tuple[str, list]:
    """One entry parsed, finite under grid, and every option (or both ends) a valid config;
    ``where`` names its place in the config."""
    label = f"{where}{key}"
    kind, args = _parse_entry(label, spec)
    if algorithm == "grid" and kind not in FINITE:
        raise ConfigError(
            f"search.algorithm 'grid' takes only finite values (choice or grid), but "
            f"{label} is {kind}; use random or bayes for ranges"
        )
    samples = args if kind in FINITE else args[:2]
    for value in samples:
        if kind in ("randint", "qrandint"):
            value = int(value)
        try:
            apply_overrides(config, {key: value})
        except ConfigError as err:
            raise ConfigError(f"{label}: option {value!r} is invalid: {err}") from None
    return kind, args


def searched_families(parsed: dict[str, tuple[str, list]]) -> list[str]:
    """The model families a space searches ([] where ``model.family`` is not searched)."""
    kind, args = parsed.get(FAMILY_KEY, ("", []))
    return [str(a) for a in args] if kind in FINITE else []


def validate_family_spaces(
    config: Config, parsed: dict[str, tuple[str, list]]
) -> dict[str, dict[str, tuple[str, list]]]:
    """Each searched family's own entries (``search.space_by_family``), checked against that
    family's config; {} where the space searches no family (it is then not conditional)."""
    families = searched_families(parsed)
    given = config.search.space_by_family
    if not families:
        if given:
            raise ConfigError(
                "search.space_by_family needs model.family searched in search.space, e.g. "
                "model.family: {choice: [gru, transformer]}"
            )
        return {}
    unknown = sorted(set(given) - set(families))
    if unknown:
        raise ConfigError(
            f"search.space_by_family has {', '.join(unknown)}, which model.family does not "
            f"search; searched: {', '.join(families)}"
        )
    out: dict[str, dict[str, tuple[str, list]]] = {}
    for family in families:
        family_config = apply_overrides(config, {FAMILY_KEY: family})
        entries = given.get(family) or {}
        shared = sorted(set(entries) & set(parsed))
        if shared:
            raise ConfigError(
                f"search.space_by_family.{family} repeats {', '.join(shared)} of search.space; "
                "a key is searched either for every family or for one"
            )
        where = f"search.space_by_family.{family}."
        out[family] = {
            k: _checked(family_config, config.search.algorithm, k, spec, where)
            for k, spec in entries.items()
        }
    return out


def grid_size(parsed: dict[str, tuple[str, list]], by_family: dict | None = None) -> int:
    if by_family:
        return sum(len(grid_points(parsed, {f: e})) for f, e in by_family.items())
    return math.prod(len(args) for kind, args in parsed.values() if kind in FINITE)


def grid_points(
    parsed: dict[str, tuple[str, list]], by_family: dict | None = None
) -> list[dict[str, Any]]:
    """Every combination of a finite space, as encoded points; a conditional space's are
    each family's own combinations, one family after the other."""
    if by_family:
        shared = {k: v for k, v in parsed.items() if k != FAMILY_KEY}
        return [
            {FAMILY_KEY: family, **point}
            for family, entries in by_family.items()
            for point in grid_points({**shared, **entries})
        ]
    keys = list(parsed)
    options = [[_encode(o) for o in parsed[k][1]] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*options)]


class SearchSpace:
    """A validated space: the shared entries and, where ``model.family`` is searched, each
    family's own (then conditional). Called with an Optuna trial, it is Optuna's define-by-run
    function (Ray Tune's ``OptunaSearch`` calls it for each new trial): the family first, then
    the shared keys, then that family's own, named ``family:key``, so that only the active
    parameters are suggested. A class, not a closure: the searcher is pickled for ``--resume``."""

    def __init__(self, parsed: dict[str, tuple[str, list]], by_family: dict | None = None) -> None:
        self.parsed, self.by_family = parsed, by_family or {}

    @classmethod
    def of(cls, config: Config) -> SearchSpace:
        """``config.search.space`` and ``search.space_by_family``, validated."""
        parsed = validate_space(config)
        return cls(parsed, validate_family_spaces(config, parsed))

    def grid_points(self) -> list[dict[str, Any]]:
        return grid_points(self.parsed, self.by_family)

    def grid_size(self) -> int:
        return grid_size(self.parsed, self.by_family)

    def expected_trials(self, algorithm: str, num_samples: int) -> int:
        return expected_trials(self.parsed, algorithm, num_samples, self.by_family)

    def point_of(self, params: dict[str, str]) -> dict[str, Any] | None:
        """An earlier trial's MLflow parameters (text) as this space's point, named and
        encoded as :meth:`__call__` suggests it; None where the trial is not in the space."""
        family = params.get(FAMILY_KEY) if self.by_family else None
        if self.by_family and family not in self.by_family:
            return None
        named = {k: (k, e) for k, e in self.parsed.items() if not (family and k == FAMILY_KEY)}
        for key, entry in self.by_family.get(family, {}).items():
            named[f"{family}{FAMILY_SEP}{key}"] = (key, entry)
        point: dict[str, Any] = {FAMILY_KEY: family} if family else {}
        for name, (key, (kind, args)) in named.items():
            value = _from_text(params.get(key), kind, args)
            if value is None:
                return None
            point[name] = value
        return point

    def keys(self) -> set[str]:
        """Every key the space searches, in any family."""
        return set(self.parsed).union(*(set(e) for e in self.by_family.values()))

    def __call__(self, trial: Any) -> None:
        family = None
        if self.by_family:
            family = trial.suggest_categorical(FAMILY_KEY, list(self.by_family))
        for key, entry in self.parsed.items():
            if key != FAMILY_KEY or family is None:
                suggest(trial, key, *entry)
        for key, entry in self.by_family.get(family, {}).items():
            suggest(trial, f"{family}{FAMILY_SEP}{key}", *entry)


def _from_text(text: str | None, kind: str, args: list) -> Any:
    """A parameter MLflow logged as text, as the value the space would suggest (None if it
    is not one of its options, or not a number where one is due)."""
    if text is None:
        return None
    if kind in FINITE:
        # MLflow logs a list as its JSON text (as encoded here) and a scalar as str()
        return {str(_encode(o)): _encode(o) for o in args}.get(text)
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if kind in ("randint", "qrandint") else number


def suggest(trial: Any, name: str, kind: str, args: list) -> Any:
    """One value from an Optuna trial, with the distribution Ray Tune's would have."""
    if kind in FINITE:
        return trial.suggest_categorical(name, [_encode(o) for o in args])
    if kind in ("uniform", "loguniform"):
        return trial.suggest_float(name, args[0], args[1], log=kind == "loguniform")
    if kind == "quniform":
        return trial.suggest_float(name, args[0], args[1], step=args[2])
    if kind == "randint":  # Tune's upper bound is exclusive
        return trial.suggest_int(name, int(args[0]), int(args[1]) - 1)
    return trial.suggest_int(name, int(args[0]), int(args[1]), step=int(args[2]))


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


def expected_trials(
    parsed: dict[str, tuple[str, list]],
    algorithm: str,
    num_samples: int,
    by_family: dict | None = None,
) -> int:
    """How many trials Ray Tune creates: grid entries multiply random search's samples (not
    in a conditional space, where they are sampled like choices)."""
    if algorithm == "grid":
        return grid_size(parsed, by_family)
    if algorithm == "random" and not by_family:
        return num_samples * math.prod(len(a) for k, a in parsed.values() if k == "grid")
    return num_samples
