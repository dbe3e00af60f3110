"""The search and tracking sections of the run configuration (``search.*``, ``tracking.*``),
with their small rules: when the final model is the fold ensemble, and how
``search.time_budget_s`` reads a duration. Re-exported by ``orchestrator.config``; a leaf like
``orchestrator.configsections``, whose ``Section`` base it shares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.configsections import Section

# --------------------------------------------------------------------------- search / tracking
MIN_ENSEMBLE_FOLDS = 3  # search.refit auto: the fold ensemble from this many folds on


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a duration such as ``90s``, ``10m``, ``2h`` or ``1h30m``; other
    values are left for the field's own validation."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower().replace(" ", "")
    try:
        return float(text)
    except ValueError:
        pass
    total, number = 0.0, ""
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in DURATION_UNITS and number:
            total += float(number) * DURATION_UNITS[char]
            number = ""
        else:
            return value
    return total if text and not number else value


class SearchConfig(Section):
    algorithm: Literal["grid", "random", "bayes"] = "random"
    num_samples: int = Field(10, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    scheduler: Literal["fifo", "asha", "hyperband", "median"] = "fifo"
    grace_period: int = Field(2, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    sampler: Literal["tpe", "gp"] = "tpe"
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_failures: int = Field(0, ge=0)
    trial_memory_mb: int | None = Field(
        None,
        ge=1,
        description="memory a trial may allocate, in MB (the worker's address space may grow "
        "this much while the trial runs): past it the trial ends FAILED, out of memory, and "
        "the others go on; none: no limit but the machine's",
    )
    refit: Literal["auto", "folds", "best"] = Field(
        "auto",
        description="the final model: folds = the k cross-validation fold models as one model "
        "(their probabilities, or outputs, averaged; no more training), best = the chosen "
        "configuration trained again on all non-test data for the folds' median best epoch; "
        f"auto = folds from {MIN_ENSEMBLE_FOLDS} folds on (each member then learns from two "
        "thirds of the data or more), else best; with one validation split both train again",
    )
    time_budget_s: float | None = Field(
        None,
        gt=0,
        description="wall-clock budget of the trials, in seconds (90s, 10m, 2h and 1h30m also "
        "read): no trial starts once it is spent, running trials are stopped at its end with "
        "their last results kept, and the final model follows; none: no limit",
    )
    space: dict[str, Any] = {}
    space_by_family: dict[str, dict[str, Any]] = Field(
        {},
        description="where model.family is searched: each family's own keys, searched only in "
        "its trials (family -> {key: distribution}); a searched family without an entry gets "
        "its default keys, {} none",
    )
    metrics: list[str] = Field(
        [],
        description="two objectives instead of search.metric, e.g. [val_accuracy, predict_ms]: "
        "the result is their Pareto front (predict_ms: milliseconds for the final model's "
        "networks to score 64 rows; n_params: parameters of one network); bayes then uses "
        "Optuna's multi-objective TPE",
    )
    modes: list[Literal["min", "max"]] = Field(
        [], description="the direction of each of search.metrics; [] : from the metrics' names"
    )
    pick: Literal["tradeoff", "first", "second"] = Field(
        "tradeoff",
        description="the model taken from a Pareto front: tradeoff = the best second metric "
        "among trials within search.pick_tolerance of the best first metric; first or second = "
        "the best by that metric",
    )
    pick_tolerance: float = Field(
        0.005,
        ge=0,
        description="how far below the best first metric tradeoff looks (0.005: half a point "
        "of accuracy)",
    )
    warm_start: str | None = Field(
        None,
        description="an earlier search's MLflow experiment: its finished trials on the same "
        "data (same dataset digest) seed a bayes search and are not run again",
    )
    storage_path: str = Field(
        "ray_results",
        description="folder of Ray Tune's experiment folders (one per search: trial results, "
        "checkpoints, what --resume reads); the --storage flag overrides it",
    )

    @model_validator(mode="after")
    def _objectives(self) -> SearchConfig:
        if self.metrics and len(self.metrics) != 2:
            raise ValueError(f"search.metrics takes two objectives, got {len(self.metrics)}")
        if self.modes and len(self.modes) != len(self.metrics):
            raise ValueError(
                "search.modes needs one direction (min or max) per search.metrics entry"
            )
        return self

    @field_validator("time_budget_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        seconds = parse_duration(value)
        if isinstance(seconds, str) and seconds.strip().lower() not in ("", "none", "null"):
            raise ValueError("must be seconds or a duration such as 90s, 10m, 2h or 1h30m")
        return None if isinstance(seconds, str) else seconds


class TrackingConfig(Section):
    enabled: bool = True
    tracking_uri: str | None = None
    retry_s: float = Field(
        300.0,
        gt=0,
        description="how long the tracking store may fail to answer (a server restarting, a "
        "locked SQLite file) while calls are retried with backoff and records wait; past it "
        "the search's records go to a local file that automl sync replays",
    )
    experiment: str | None = None
    registered_model: str | None = None
    trial_figures: Literal["all", "best", "none"] = Field(
        "best",
        description="PNG figures of a trial (confusion matrix, ROC, learning curves): for every "
        "trial, for a trial that is the best so far and still the best 10 s after it ended "
        "(the search's best always has them), or for none; every trial logs the tables "
        "(true = all, false = none)",
    )

    @field_validator("trial_figures", mode="before")
    @classmethod
    def _figures_flag(cls, value: Any) -> Any:
        return {True: "all", False: "none"}.get(value, value) if isinstance(value, bool) else value
