"""What the "auto" settings of a ``Config`` stand for, decided for the data (a leaf).

``prepare_run`` and ``cross_validate`` call :func:`resolve_auto` once the data is loaded; a
``models.Trainer`` built directly calls :func:`resolve_training` with its own training data.
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import Config, TrainingConfig

# What "auto" stands for in the training section, by modality (measured on the series and tables
# of benchmarks/defaults.py): small series sets need more, smaller steps and a decaying rate;
# from SMALL_SERIES training series on, fewer epochs do (and each costs more).
SMALL_SERIES = 500
AUTO_TRAINING: dict[str, dict[str, Any]] = {
    "sequence": {"epochs": 150, "patience": 40, "scheduler": "cosine"},
    "sequence-large": {"epochs": 60, "patience": 15, "scheduler": "cosine"},
    "table": {"epochs": 60, "patience": 10, "scheduler": "none"},
    "image": {"epochs": 60, "patience": 10, "scheduler": "none"},
}


def _auto_training(modality: str, n_fit: int) -> dict[str, Any]:
    if modality == "sequence" and n_fit >= SMALL_SERIES:
        return AUTO_TRAINING["sequence-large"]
    return AUTO_TRAINING.get(modality, AUTO_TRAINING["table"])


def auto_batch_size(n_fit: int) -> int:
    """A tenth of the training rows, between 16 and 64."""
    return int(min(64, max(16, n_fit // 10)))


def resolve_training(cfg: TrainingConfig, modality: str, n_fit: int) -> TrainingConfig:
    """``cfg`` with every "auto" replaced by its value for ``modality`` and ``n_fit`` rows."""
    auto = _auto_training(modality, n_fit)
    update: dict[str, Any] = {}
    if cfg.batch_size == "auto":
        update["batch_size"] = auto_batch_size(n_fit)
    if cfg.epochs == "auto":
        update["epochs"] = auto["epochs"]
    if cfg.early_stopping.patience == "auto":
        update["early_stopping"] = cfg.early_stopping.model_copy(
            update={"patience": auto["patience"]}
        )
    if cfg.scheduler.name == "auto":
        update["scheduler"] = cfg.scheduler.model_copy(update={"name": auto["scheduler"]})
    return cfg.model_copy(update=update) if update else cfg


def resolve_auto(config: Config, modality: str, n_fit: int) -> Config:
    """``config`` with the "auto" training and augmentation settings decided for the data:
    ``modality`` and ``n_fit``, the rows a fold trains on."""
    training = resolve_training(config.training, modality, n_fit)
    update: dict[str, Any] = {"training": training} if training is not config.training else {}
    if config.data.augment.enabled == "auto":
        small_series = modality == "sequence" and n_fit < SMALL_SERIES
        augment = config.data.augment.model_copy(update={"enabled": small_series})
        update["data"] = config.data.model_copy(update={"augment": augment})
    return config.model_copy(update=update) if update else config
