"""One fold: its fitted preprocessing, its tensors (cached per worker) and its trainer.

:class:`PreparedData` is what every trial shares; :func:`fit_fold` turns a train/validation split
of it into a :class:`FittedFold` ready to train, and :func:`evaluate` scores a fold.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Only what a trial needs at import: a Ray worker that runs trials on folds fitted in the driver
# (PrecomputedFolds) never imports scikit-learn (~1.2 s of CPU per worker at start-up);
# fitting a fold's preprocessing imports it where that happens.
from data.dataset import Dataset
from data.tasks import TargetEncoder
from models import TensorData, Trainer, build_model, compute_metrics, output_size
from models.metrics import light_metrics
from orchestrator.config import Config
from orchestrator.errors import TrainingError
from orchestrator.foldcache import FOLD_CACHE, MAX_BYTES, FoldData, fold_key

MAX_FOLD_THREADS = 8
THREADED_FOLDS_VALUES = 1_000_000  # rows × columns from which folds are fitted in threads


@dataclass(frozen=True)
class FoldShape:
    """What a trial uses of a fold's fitted preprocessing, the shape of what it outputs; a
    fold fitted in the driver carries this instead of the scikit-learn objects."""

    output_shape_: tuple[int, ...]


@dataclass(frozen=True)
class PrecomputedFolds:
    """The k-fold splits and every fold's fitted parts, made once in the driver for a search
    whose space leaves the data, the split and the seed alone; trials look them up by the same
    keys as a worker's fold cache and fit a fold themselves where a key differs."""

    split_key: str
    splits: list[tuple[np.ndarray, np.ndarray]]
    entries: dict[tuple, FoldData]
    # each entry's fitted preprocessing, kept in the driver only: the pickle that reaches the
    # workers leaves it out (they would import scikit-learn to read it). The fold ensemble
    # (search.refit: folds) puts it back into the best trial's fold models.
    preprocessors: dict[tuple, Any] = field(default_factory=dict, compare=False)

    def __reduce__(self) -> tuple:
        return (PrecomputedFolds, (self.split_key, self.splits, self.entries))


@dataclass(frozen=True)
class PreparedData:
    """Cleaned non-test data plus what every fold needs; shared read-only by all trials."""

    dataset: Dataset
    task: str
    family: str
    class_names: list[str] | None
    groups: np.ndarray | None = None
    # identifies this prepared data in a worker's fold cache (orchestrator.foldcache)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    folds: PrecomputedFolds | None = None

    def splits(self, config: Config) -> list[tuple[np.ndarray, np.ndarray]]:
        """The k-fold splits of ``config``: the precomputed ones where they apply."""
        if self.folds is not None and self.folds.split_key == split_key(config):
            return self.folds.splits
        from data.splitting import make_folds

        return make_folds(self.dataset.y, self.task, config.split, config.seed, groups=self.groups)


def split_key(config: Config) -> str:
    """Everything the k-fold splits depend on, besides the data."""
    return json.dumps([config.seed, config.split.model_dump(mode="json")], sort_keys=True)


def uses_early_stop(config: Config, early_stop: bool = True) -> bool:
    """Whether a fold holds out part of its training rows to stop early on."""
    return early_stop and config.training.early_stopping.enabled and config.split.inner_val_size > 0


def precompute_folds(prepared: PreparedData, config: Config) -> PreparedData:
    """``prepared`` with every fold of ``config`` split and fitted (see :class:`PrecomputedFolds`);
    unchanged where the folds' tensors together exceed the fold cache's byte limit.

    A large table's folds are fitted in threads, one per core: the driver does this while the
    trial workers wait, and part of it is numpy work on whole columns, which runs outside the
    GIL (3 folds of a 200,000 × 50 table: 1.48–1.75 s against 2.12 s one after another, on 2
    cores). A small one's gain no longer pays for the threads (digits: 0.5 s either way).
    """
    splits = prepared.splits(config)
    use_es = uses_early_stop(config)

    fitted: dict[tuple, Any] = {}

    def fit(i: int) -> tuple[tuple, FoldData]:
        tr, va = splits[i]
        seed = fold_seed(config.seed, 1, i)
        data = prepare_fold(prepared.dataset, tr, va, prepared, config, seed, use_es)
        shape = FoldShape(tuple(data.preprocessor.output_shape_))
        key = fold_key(prepared.token, i + 1, config, seed, use_es)
        fitted[key] = data.preprocessor
        return key, dataclasses.replace(data, preprocessor=shape)

    threads = min(len(splits), os.cpu_count() or 1, MAX_FOLD_THREADS)
    if threads > 1 and _values(prepared.dataset) >= THREADED_FOLDS_VALUES:
        with ThreadPoolExecutor(threads, thread_name_prefix="automl-folds") as pool:
            entries = dict(pool.map(fit, range(len(splits))))
    else:
        entries = dict(fit(i) for i in range(len(splits)))
    if sum(e.nbytes for e in entries.values()) > MAX_BYTES:
        return prepared
    folds = PrecomputedFolds(split_key(config), splits, entries, fitted)
    return dataclasses.replace(prepared, folds=folds)


def fitted_preprocessor(prepared: PreparedData, config: Config, fold: int) -> Any | None:
    """The preprocessing the driver fitted for fold ``fold`` (0-based) of ``config``, where it
    precomputed that fold (see :class:`PrecomputedFolds`); None otherwise."""
    if prepared.folds is None:
        return None
    seed = fold_seed(config.seed, 1, fold)
    key = fold_key(prepared.token, fold + 1, config, seed, uses_early_stop(config))
    return prepared.folds.preprocessors.get(key)


def _values(ds: Dataset) -> int:
    return int(np.prod(np.shape(ds.X)))


def fold_seed(master: int, *path: int) -> int:
    """Derive an independent 31-bit seed from the master seed and a path such as (fold,)."""
    return int(np.random.SeedSequence([master, *path]).generate_state(1)[0] & 0x7FFFFFFF)


def to_tensors(x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None) -> TensorData:
    return TensorData(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y)),
        None if lengths is None else torch.from_numpy(np.asarray(lengths, dtype=np.int64)),
    )


@dataclass
class FittedFold:
    """One fold's fitted preprocessing, target encoder and trainer."""

    preprocessor: object
    target: TargetEncoder
    trainer: Trainer
    val: TensorData | None


def fit_fold(
    ds: Dataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    prepared: PreparedData,
    config: Config,
    seed: int,
    early_stop: bool = True,
    name: str = "refit",
) -> FittedFold:
    """Fit preprocessing on ``train_idx`` only and set up a trainer; ``val_idx`` is transformed.

    ``name`` (``fold1``, …, ``refit``) keeps each trainer's ``training.checkpoint_dir`` apart.
    """
    task = prepared.task
    training = config.training
    if training.checkpoint_dir:
        training = training.model_copy(
            update={"checkpoint_dir": str(Path(training.checkpoint_dir) / name)}
        )
    use_es = uses_early_stop(config, early_stop)
    key = None
    if name.startswith("fold") and prepared.token:
        key = fold_key(prepared.token, int(name[4:]), config, seed, use_es)
    data = FOLD_CACHE.get(key) if key is not None else None
    if data is None and key is not None and prepared.folds is not None:
        data = prepared.folds.entries.get(key)
    if data is None:
        data = prepare_fold(ds, train_idx, val_idx, prepared, config, seed, use_es)
        if key is not None:
            FOLD_CACHE.put(key, data)
    pre, target = data.preprocessor, data.target
    n_classes = target.n_classes_ if task == "classification" else None
    n_out = output_size(task, n_classes, config.training.loss)
    spec = config.model.model_copy(update={"family": effective_family(config, prepared)})
    torch.manual_seed(seed)
    model = build_model(spec, tuple(pre.output_shape_), n_out)
    augment = _augmenter(ds.modality, config.data.augment)
    trainer = Trainer(model, training, task, data.fit, data.early_stop, seed, augment=augment)
    return FittedFold(pre, target, trainer, data.val)


def effective_family(config: Config, prepared: PreparedData) -> str:
    """The family a configuration trains: its own (a search may sample ``model.family``), or
    the one ``auto`` resolved to for the data."""
    return prepared.family if config.model.family == "auto" else config.model.family


def _augmenter(modality: str, cfg: Any) -> Any:
    """The training-batch augmentation of ``modality`` under ``data.augment``, or None."""
    # a config that reached here unresolved: "auto" as for a small series set
    enabled = modality == "sequence" if cfg.enabled == "auto" else cfg.enabled
    if not enabled or modality not in ("image", "sequence"):
        return None
    cfg = cfg.model_copy(update={"enabled": True})
    from data import augment_images, augment_series

    def augment(batch: torch.Tensor, gen: torch.Generator, lengths: Any = None) -> torch.Tensor:
        if modality == "image":
            return augment_images(batch, cfg, gen)
        return augment_series(batch, cfg, gen, lengths)

    return augment


def prepare_fold(
    ds: Dataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    prepared: PreparedData,
    config: Config,
    seed: int,
    use_es: bool,
) -> FoldData:
    """Fit a fold's preprocessing and target encoder on ``train_idx``; its parts as tensors."""
    from data.preprocessing import fit_preprocessor
    from data.splitting import inner_split

    task = prepared.task
    train = ds.subset(train_idx)
    target = TargetEncoder(task)
    if task == "classification":
        # class indices must agree across folds, and class labels carry no feature information
        target.fit(ds.y if prepared.class_names is None else np.asarray(prepared.class_names))
    else:
        target.fit(train.y)
    es_part = None
    fit_part = train
    if use_es:
        fit_idx, es_idx = inner_split(train.y, task, config.split.inner_val_size, seed)
        fit_part, es_part = train.subset(fit_idx), train.subset(es_idx)
    pre = fit_preprocessor(train.X, ds.modality, config.data)

    def tensors(part: Dataset) -> TensorData:
        return to_tensors(pre.transform(part.X), target.transform(part.y), part.lengths)

    return FoldData(
        pre,
        target,
        tensors(fit_part),
        tensors(es_part) if es_part is not None else None,
        tensors(ds.subset(val_idx)) if val_idx is not None else None,
    )


def predict_tensors(trainer: Trainer, data: TensorData) -> np.ndarray:
    return trainer.predict(data.x, data.lengths)


def evaluate(
    fold: FittedFold, task: str, n_classes: int | None, full: bool = True
) -> dict[str, float]:
    """Validation metrics of a fold in the target's own units, plus the training loss.

    ``full=False`` computes only the cheap every-epoch subset (accuracy and log loss, or the
    regression errors); the complete set is computed when a fold ends.
    """
    output, loss = fold.trainer.predict_with_loss(fold.val)
    if not np.all(np.isfinite(output)):
        raise TrainingError(
            f"the predictions became non-finite at epoch {fold.trainer.epoch}: the training "
            f"diverged; lower training.optimizer.lr or set training.grad_clip"
        )
    y = fold.val.y.numpy()
    if task == "regression":
        output, y = fold.target.inverse_transform(output), fold.target.inverse_transform(y)
    if full:
        metrics = compute_metrics(task, y, output, n_classes)
    else:
        metrics = light_metrics(task, y, output)
    metrics["loss"] = loss
    return metrics
