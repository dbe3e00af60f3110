"""The sections of the run configuration: one frozen pydantic model per component.

``Config`` (``orchestrator/config.py``) holds one of each: data (with its cleaning and
augmentation), split, model, training (optimizer, scheduler, early stopping), search and
tracking. Here too are the constants and small rules that belong to a section's keys: the model
families and which families train stacked under ``training.fuse_folds``. The search and
tracking sections are in ``orchestrator/configsearch.py``. A leaf: imports nothing from the
project.
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
