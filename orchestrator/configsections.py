"""The sections of the run configuration: one frozen pydantic model per component.

``Config`` (``orchestrator/config.py``) holds one of each: data (with its cleaning and
augmentation), split, model, training (optimizer, scheduler, early stopping), search and
tracking. Here too are the constants and small rules that belong to a section's keys: the model
families, which families train stacked under ``training.fuse_folds``, and how
``search.time_budget_s`` reads a duration. A leaf: imports nothing from the project.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# a positive count, or "auto": decided for the data at run time (resolve_auto)
AutoCount = Annotated[int, Field(ge=1)] | Literal["auto"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- data
class CleaningConfig(Section):
    numeric_impute: Literal["median", "mean", "constant", "drop"] = "median"
    fill_value: float = Field(0.0, allow_inf_nan=False)
    categorical_impute: Literal["most_frequent", "missing", "drop"] = "most_frequent"
    drop_duplicates: bool = True
    fix_errors: bool = True
    drop_constant: bool = True


class AugmentConfig(Section):
    enabled: bool | Literal["auto"] = Field(
        "auto",
        description="augment training batches (never validation or test data): images are "
        "rotated, shifted and flipped, sequences window-sliced, scaled and jittered; auto: on "
        "for small series sets (under 500 training series per fold: they generalise better "
        "with it), off otherwise",
    )
    # images
    rotation: float = Field(10.0, ge=0, le=180, description="max rotation in degrees")
    shift: float = Field(0.1, ge=0, le=0.5, description="max shift as a fraction of the size")
    hflip: bool = False
    vflip: bool = False
    # sequences (Um et al. 2017; Le Guennec et al. 2016)
    jitter: float = Field(
        0.03, ge=0, description="sequences: standard deviation of the noise added to each step"
    )
    scaling: float = Field(
        0.1, ge=0, description="sequences: standard deviation of each series' random scale factor"
    )
    window_slice: float = Field(
        1.0,
        gt=0,
        le=1,
        description="sequences: share of each series kept by a random window, stretched back to "
        "its length (1 = off; 0.9 helps where the class does not depend on timing, and cost "
        "0.03-0.04 test accuracy on the 24-step series of benchmarks/defaults.py)",
    )


class DataConfig(Section):
    source: str = "builtin:digits"
    target: str | None = None
    test_source: str | None = None
    modality: Literal["auto", "table", "image", "sequence"] = "auto"
    task: Literal["auto", "classification", "regression"] = "auto"
    group_column: str | None = None
    scaling: Literal["standard", "minmax", "robust", "none"] = "standard"
    series_norm: Literal["auto", "on", "off"] = Field(
        "auto",
        description="sequences: z-normalise each series over its own steps before scaling "
        "(auto: when there is one feature per step)",
    )
    encoding: Literal["onehot", "ordinal"] = "onehot"
    cleaning: CleaningConfig = CleaningConfig()
    augment: AugmentConfig = AugmentConfig()

    @field_validator("series_norm", mode="before")
    @classmethod
    def _series_norm_flag(cls, value: Any) -> Any:
        # YAML reads an unquoted on/off as true/false
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# --------------------------------------------------------------------------- split
class SplitConfig(Section):
    test_size: float = Field(0.15, gt=0, lt=1)
    val_size: float = Field(0.15, gt=0, lt=1, description="validation fraction when folds == 1")
    folds: int = Field(5, ge=1)
    strategy: Literal["auto", "stratified", "kfold", "group", "timeseries"] = "auto"
    inner_val_size: float = Field(
        0.1, ge=0, lt=1, description="part of each fold's training data watched by early stopping"
    )

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.folds == 1 and self.test_size + self.val_size >= 1:
            raise ValueError(
                f"split.test_size + split.val_size must be below 1, got "
                f"{self.test_size} + {self.val_size}"
            )
        return self


# --------------------------------------------------------------------------- model
Family = Literal[
    "auto", "fnn", "cnn", "cnn1d", "resnet1d", "inception", "rnn", "lstm", "gru", "transformer"
]
SEQUENCE_FAMILIES = ("resnet1d", "inception", "cnn1d", "rnn", "lstm", "gru", "transformer")


class ModelConfig(Section):
    """Architecture of every family; each family reads the fields that concern it."""

    family: Family = "auto"
    # shared
    activation: Literal["relu", "gelu", "tanh", "sigmoid", "leaky_relu"] = "relu"
    dropout: Annotated[float, Field(ge=0, lt=1)] | Literal["auto"] = Field(
        "auto",
        description="dropout probability after each hidden layer (and each conv block); auto: "
        "0.3 in the fnn (measured on small tables against a logistic regression), 0.1 elsewhere",
    )
    batch_norm: bool | Literal["auto"] = Field(
        "auto",
        description="batch normalisation after each dense hidden layer and each conv layer; "
        "auto: on, except in the fnn (measured: on small tables its running statistics cost "
        "test accuracy against a logistic regression)",
    )
    # fnn: hidden layers; cnn/cnn1d/rnn/transformer: the dense head after the feature extractor
    hidden_sizes: list[int] = [256, 128]
    linear_skip: bool = Field(
        True,
        description="fnn: add a linear model of the inputs to the network's output (wide and "
        "deep), so that it starts from what a logistic or linear regression finds",
    )
    head_sizes: list[int] | None = None
    # cnn / cnn1d / resnet1d
    channels: list[int] | None = None
    kernel_size: int = Field(3, ge=1)
    stride: int = Field(1, ge=1)
    padding: Literal["same", "valid"] = "same"
    pool: Literal["max", "avg", "none"] = "max"
    # inception
    depth: int = Field(6, ge=1)
    filters: int = Field(32, ge=1)
    max_kernel: int = Field(40, ge=1)
    # rnn / lstm / gru
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    bidirectional: bool = False
    # transformer
    d_model: int = Field(64, ge=2)
    num_heads: int = Field(4, ge=1)
    dim_feedforward: int = Field(128, ge=1)
    positional: Literal["sinusoidal", "learned", "none"] = "sinusoidal"

    @field_validator("hidden_sizes", "head_sizes", "channels")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(int(x) < 1 for x in v):
            raise ValueError(f"layer sizes must be positive integers, got {v}")
        return v

    @model_validator(mode="after")
    def _heads(self) -> ModelConfig:
        if self.family == "transformer" and self.d_model % self.num_heads:
            raise ValueError(
                f"model.d_model must be divisible by model.num_heads, got "
                f"{self.d_model} and {self.num_heads}"
            )
        return self


# --------------------------------------------------------------------------- training
class OptimizerConfig(Section):
    name: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False


class SchedulerConfig(Section):
    name: Literal["auto", "none", "step", "cosine", "plateau", "onecycle"] = "auto"
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.5, gt=0, le=1)
    patience: int = Field(3, ge=0)
    factor: float = Field(0.5, gt=0, lt=1)
    min_lr: float = Field(0.0, ge=0)


class EarlyStoppingConfig(Section):
    enabled: bool = True
    patience: AutoCount = Field(
        "auto",
        description="epochs without improvement before stopping; auto: 40 for sequences "
        "(15 from 500 training series per fold on), 10 otherwise",
    )
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True


class TrainingConfig(Section):
    loss: Literal["auto", "cross_entropy", "bce", "mse", "huber"] = "auto"
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    batch_size: AutoCount = Field(
        "auto",
        description="training batch size; auto: a tenth of a fold's training rows, between 16 "
        "and 64 (small data gets several steps per epoch)",
    )
    epochs: AutoCount = Field(
        "auto",
        description="most epochs a fold trains (the refit trains for the folds' median best "
        "epoch instead); auto: 150 for sequences (60 from 500 training series per fold on), 60 "
        "otherwise",
    )
    grad_clip: float | None = Field(5.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32",
        description="arithmetic of training: fp32, or mixed precision with autocast in bf16 or "
        "fp16 (fp16 with loss scaling); auto = bf16 on a GPU that supports it, fp16 on an older "
        "GPU, fp32 on the CPU. Evaluation runs in the same precision; fp16 trains the folds one "
        "by one (not stacked)",
    )
    num_threads: int | None = Field(None, ge=1)
    checkpoint_dir: str | None = None
    fuse_folds: Literal["auto", "on", "off"] = "auto"

    @field_validator("fuse_folds", mode="before")
    @classmethod
    def _fuse_flag(cls, value: Any) -> Any:
        # YAML reads an unquoted on/off as true/false
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# Families whose k folds train as one stacked model under ``training.fuse_folds: auto``:
# measured faster by benchmarks/fusion.py. "on" fuses every family that can be stacked;
# recurrent families never can (vmap has no batching rule for nn.LSTM/nn.GRU).
FUSED_WHEN_AUTO = ("fnn",)
FUSED_WHEN_ON = ("fnn", "cnn")


def stacked_families(fuse_folds: str) -> tuple[str, ...]:
    """The model families trained as stacked models under ``training.fuse_folds``."""
    return {"auto": FUSED_WHEN_AUTO, "on": FUSED_WHEN_ON}.get(fuse_folds, ())


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
