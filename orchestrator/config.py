"""The typed run configuration: one frozen pydantic model with a section per component.

A run is described by ``Config``; YAML files load into it, ``--set a.b.c=value`` overrides and
sampled search points are dotted keys applied with :func:`apply_overrides`, and the result is
validated again. The same dotted string is the ``--set`` key, the Ray Tune column and the MLflow
parameter name. The section models live in ``orchestrator/configsections.py`` and are
re-exported here, so ``from orchestrator.config import ModelConfig`` keeps working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.configsearch import (  # noqa: F401  (re-exported: config was their home)
    DURATION_UNITS,
    MIN_ENSEMBLE_FOLDS,
    SearchConfig,
    TrackingConfig,
    parse_duration,
)
from orchestrator.configsections import (  # noqa: F401  (re-exported: config was their home)
    FUSED_WHEN_AUTO,
    FUSED_WHEN_ON,
    SEQUENCE_FAMILIES,
    AugmentConfig,
    AutoCount,
    CleaningConfig,
    DataConfig,
    EarlyStoppingConfig,
    Family,
    ModelConfig,
    OptimizerConfig,
    SchedulerConfig,
    Section,
    SplitConfig,
    TrainingConfig,
    stacked_families,
)
from orchestrator.errors import ConfigError, did_you_mean


class Config(Section):
    seed: int = 0
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    search: SearchConfig = SearchConfig()
    tracking: TrackingConfig = TrackingConfig()

    def flat(self) -> dict[str, Any]:
        """Dotted keys to leaf values (``training.optimizer.lr``), skipping the search space
        (``search.space`` and ``search.space_by_family``)."""
        return flatten(self.model_dump(exclude={"search": {"space", "space_by_family"}}))


def uses_fold_ensemble(config: Config) -> bool:
    """Whether the final model is the k fold models as one (``search.refit``)."""
    refit, folds = config.search.refit, config.split.folds
    return folds >= 2 and (refit == "folds" or (refit == "auto" and folds >= MIN_ENSEMBLE_FOLDS))


# --------------------------------------------------------------------------- helpers
def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# how pydantic names the two arms of AutoCount in an error's location
AUTO_UNION_TAGS = ("constrained-int", "constrained-float", "literal['auto']")


def _auto_arm(dotted: str) -> str:
    """What the number of a ``number | "auto"`` key may be, in words, from its bounds."""
    parent, _, leaf = dotted.rpartition(".")
    model = _section_at(parent)
    field = model.model_fields.get(leaf) if model else None
    args = getattr(getattr(field, "annotation", None), "__args__", ())
    for arm in args:
        base, bounds = getattr(arm, "__origin__", None), getattr(arm, "__metadata__", ())
        if base is int:
            return "a whole number of at least 1"
        if base is float:
            words = []
            constraints = [c for b in bounds for c in getattr(b, "metadata", [b])]
            for c in constraints:
                for attr, text in (("ge", "at least"), ("gt", "above"), ("lt", "below")):
                    if getattr(c, attr, None) is not None:
                        words.append(f"{text} {getattr(c, attr)}")
            return "a number " + " and ".join(words) if words else "a number"
    return "a number"


def _format_errors(err: ValidationError, source: str) -> str:
    parts = []
    seen_auto: set[str] = set()
    for e in err.errors():
        if e["loc"] and str(e["loc"][-1]) in AUTO_UNION_TAGS:  # a number or "auto": one message
            loc = ".".join(str(p) for p in e["loc"][:-1])
            if loc not in seen_auto:
                seen_auto.add(loc)
                parts.append(f"{loc}: must be {_auto_arm(loc)}, or 'auto', got {e.get('input')!r}")
            continue
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent, _, leaf = loc.rpartition(".")
            model = _section_at(parent)
            options = list(model.model_fields) if model else []
            parts.append(
                f"unknown key '{loc}'{did_you_mean(leaf, options)}; allowed: {', '.join(options)}"
            )
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"].startswith("literal_error") or e["type"] == "enum":
            msg = msg.replace("Input should be", "must be one of")
            expected = e.get("ctx", {}).get("expected", "")
            options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",")]
            msg += did_you_mean(e.get("input"), options)
        msg = msg.replace("Input should be", "must be")  # pydantic's wording, as the rule reads
        parts.append(f"{loc or 'config'}: {msg}, got {e.get('input')!r}")
    where = f" in {source}" if source else ""
    return f"invalid configuration{where}: " + "; ".join(parts)


def _section_at(dotted: str) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in filter(None, dotted.split(".")):
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def validate_config(raw: dict[str, Any], source: str = "") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"the configuration{' in ' + source if source else ''} must be a "
            f"mapping of sections, got {type(raw).__name__}"
        )
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Load a YAML file into a validated ``Config`` (defaults when ``path`` is None)."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(
            f"config file {p} is not valid YAML: {str(err).splitlines()[0]}{where}; a config is "
            "a YAML mapping of sections (see examples/)"
        ) from None
    return validate_config(raw, str(p))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value``; the value is read as YAML (numbers, lists, booleans)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key.path=value, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Return a new validated ``Config`` with dotted ``overrides`` applied."""
    if not overrides:
        return config
    raw = config.model_dump()
    for dotted, value in overrides.items():
        node = raw
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                here = ".".join(parts[:i])
                options = list(node) if isinstance(node, dict) else []
                raise ConfigError(
                    f"unknown key '{dotted}': '{part}' is not a section"
                    f"{' of ' + here if here else ''}{did_you_mean(part, options)}; "
                    f"allowed: {', '.join(options)}"
                )
            node = node[part]
        leaf = parts[-1]
        if leaf not in node and dotted != "search.space":
            raise ConfigError(
                f"unknown key '{dotted}'{did_you_mean(leaf, list(node))}; "
                f"allowed: {', '.join(node)}"
            )
        node[leaf] = value
    return validate_config(raw, "overrides")
