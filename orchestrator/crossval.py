"""k-fold cross-validation of one configuration, folds trained in lockstep epoch by epoch.

``automl train`` and the Ray Tune trial both iterate :func:`cross_validate`; each item is the
mean over all k folds of the validation metrics at that epoch, so schedulers such as ASHA compare
like with like. A fold that stopped early contributes the metrics of its restored best weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import FusedTrainer, Trainer, fusion_blocker
from models.metrics import LIGHT_METRICS
from orchestrator.autoconfig import resolve_auto
from orchestrator.config import Config, SplitConfig, stacked_families
from orchestrator.errors import AutoMLError, TrainingError
from orchestrator.folds import (  # noqa: F401  (PreparedData, fit_fold, fold_seed re-exported)
    FittedFold,
    PreparedData,
    effective_family,
    evaluate,
    fit_fold,
    fold_seed,
    predict_tensors,
)
from orchestrator.predictor import FoldEnsemble, Predictor

LOWER_IS_BETTER = {"loss", "log_loss", "mse", "rmse", "mae"}


def stacked_trainer(trainers: list[Trainer], family: str, mode: str) -> FusedTrainer | None:
    """``trainers`` as one stacked model when ``training.fuse_folds`` (``mode``) and ``family``
    allow it and nothing blocks it, else None (train them one by one)."""
    if family not in stacked_families(mode) or fusion_blocker(trainers):
        return None
    return FusedTrainer(trainers)


def main_metric(task: str) -> str:
    """The metric a search optimises by default."""
    return "val_accuracy" if task == "classification" else "val_r2"


def metric_mode(metric: str) -> str:
    name = metric.removeprefix("val_").removeprefix("test_")
    return "min" if name in LOWER_IS_BETTER else "max"


def fit_rows(n_trainval: int, split: SplitConfig) -> int:
    """About how many rows a fold's model trains on (the early-stopping part left out)."""
    share = (split.folds - 1) / split.folds if split.folds > 1 else 1 - split.val_size
    return max(1, int(n_trainval * share * (1 - split.inner_val_size)))


@dataclass
class CVResult:
    """Final outcome of cross-validation."""

    per_fold: list[dict[str, float]]
    best_epochs: list[int]
    oof_output: np.ndarray  # probabilities (N, K) or values (N,), in dataset order
    oof_true: np.ndarray  # encoded targets, in dataset order
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, object]]:
        """``{metric: {"mean", "std", "per_fold"}}`` over folds (validation metrics)."""
        out: dict[str, dict[str, object]] = {}
        for name in self.per_fold[0]:
            values = [float(f[name]) for f in self.per_fold]
            out[name] = {
                "mean": float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan"),
                "std": float(np.nanstd(values)) if not np.all(np.isnan(values)) else float("nan"),
                "per_fold": values,
            }
        return out

    @property
    def refit_epochs(self) -> int:
        """The epoch count the folds chose: the median of their best epochs."""
        return max(1, int(round(float(np.median(self.best_epochs)))))


class CrossValidation:
    """Iterate to train: one item of fold-mean metrics per epoch; ``result`` is set at the end."""

    def __init__(
        self,
        prepared: PreparedData,
        config: Config,
        resume_from: str | Path | None = None,
        checkpointing: bool = False,
    ) -> None:
        self.prepared = prepared
        self.config = config
        self.resume_from = None if resume_from is None else Path(resume_from)
        # per-fold optimizer state must be saved whole, so checkpointed CV trains unfused
        self.checkpointing = checkpointing or self.resume_from is not None
        self.result: CVResult | None = None
        self.folds: list[FittedFold] = []
        self.splits: list[tuple[np.ndarray, np.ndarray]] = []
        self.fused: FusedTrainer | None = None

    @property
    def class_names(self) -> list[str] | None:
        """Class names in the order of the model's outputs (None for regression)."""
        if not self.folds or self.prepared.task != "classification":
            return None
        return [str(c) for c in self.folds[0].target.classes_]

    def __iter__(self) -> Iterator[dict[str, float]]:
        prepared, config = self.prepared, self.config
        ds, task = prepared.dataset, prepared.task
        splits = prepared.splits(config)
        folds = [
            fit_fold(
                ds, tr, va, prepared, config, fold_seed(config.seed, 1, i), name=f"fold{i + 1}"
            )
            for i, (tr, va) in enumerate(splits)
        ]
        self.folds, self.splits = folds, splits
        self.fused = self._fuse(folds)
        n_classes = folds[0].target.n_classes_ if task == "classification" else None
        # every epoch gets the cheap metrics, plus the search metric when it is not among them
        watched = (config.search.metric or "").removeprefix("val_")
        every_epoch_full = watched not in (*LIGHT_METRICS[task], "loss", "")
        last_val: list[dict[str, float] | None] = [None] * len(folds)
        last_train: list[dict[str, float]] = [{} for _ in folds]
        history: list[dict[str, float]] = []
        first = 1
        if self.resume_from is not None:
            first, last_train, last_val, history = self._load_state(self.resume_from)
        self._progress = (last_train, last_val, history)
        for epoch in range(first, config.training.epochs + 1):
            self._epoch = epoch
            trained = self._train_fused(epoch) if self.fused is not None else None
            for i, fold in enumerate(folds):
                if trained is not None:
                    if trained[i] is None:
                        continue
                    last_train[i] = trained[i]
                elif fold.trainer.stopped:
                    continue
                else:
                    try:
                        last_train[i] = fold.trainer.train_epoch()
                    except AutoMLError:
                        raise
                    except RuntimeError as err:  # e.g. shape errors deep inside torch
                        raise TrainingError(f"fold {i + 1} failed at epoch {epoch}: {err}") from err
                if fold.trainer.stopped:
                    fold.trainer.finish()
                full = every_epoch_full or fold.trainer.stopped
                last_val[i] = evaluate(fold, task, n_classes, full=full)
            report = self._fold_mean(epoch, last_train, last_val)
            history.append(report)
            if all(f.trainer.stopped for f in folds):
                self.result = self._finish(folds, splits, last_val, history, n_classes)
                report = {**report, **_flat_summary(self.result)}
                yield report
                return
            yield report

    def ensemble(self) -> FoldEnsemble:
        """The trained fold models as one model (``search.refit: folds``): each fold's
        preprocessing, target encoder and network at its best epoch."""
        ds = self.prepared.dataset
        family = effective_family(self.config, self.prepared)
        return FoldEnsemble(
            [
                Predictor(
                    preprocessor=fold.preprocessor,
                    target=fold.target,
                    network=fold.trainer.model,
                    task=self.prepared.task,
                    family=family,
                    modality=ds.modality,
                    input_types=ds.column_types,
                )
                for fold in self.folds
            ]
        )

    def save_state(self, folder: str | Path) -> None:
        """Write every fold's training state and the CV progress (for a trial checkpoint)."""
        folder = Path(folder)
        for i, fold in enumerate(self.folds):
            fold.trainer.save_checkpoint(folder / f"fold{i + 1}.pt")
        last_train, last_val, history = self._progress
        (folder / "cv_state.json").write_text(
            json.dumps(
                {
                    "epoch": self._epoch,
                    "last_train": last_train,
                    "last_val": last_val,
                    "history": history,
                }
            )
        )

    def _load_state(self, folder: Path) -> tuple[int, list, list, list]:
        for i, fold in enumerate(self.folds):
            fold.trainer.load_checkpoint(folder / f"fold{i + 1}.pt")
        state = json.loads((folder / "cv_state.json").read_text())
        return state["epoch"] + 1, state["last_train"], state["last_val"], state["history"]

    def _fuse(self, folds: list[FittedFold]) -> FusedTrainer | None:
        """A stacked trainer for the folds when ``training.fuse_folds`` and the family allow."""
        if self.checkpointing:
            return None
        if len(folds) < 2:
            return None
        return stacked_trainer(
            [f.trainer for f in folds],
            effective_family(self.config, self.prepared),
            self.config.training.fuse_folds,
        )

    def _train_fused(self, epoch: int) -> list[dict[str, float] | None]:
        try:
            return self.fused.train_epoch()
        except AutoMLError:
            raise
        except RuntimeError as err:
            raise TrainingError(f"the fused folds failed at epoch {epoch}: {err}") from err

    @staticmethod
    def _fold_mean(epoch: int, train: list[dict], val: list[dict | None]) -> dict[str, float]:
        report: dict[str, float] = {"epoch": float(epoch)}
        for key in ("train_loss", "grad_norm", "lr"):
            values = [t[key] for t in train if t.get(key) is not None]
            if values:
                report[key] = float(np.mean(values))
        scored = [v for v in val if v is not None]
        names = [n for n in scored[0] if all(n in v for v in scored)]
        for name in names:
            values = np.array([v[name] for v in scored], dtype=float)
            report[f"val_{name}"] = (
                float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")
            )
        return report

    def _finish(self, folds, splits, last_val, history, n_classes) -> CVResult:
        ds = self.prepared.dataset
        oof_output: np.ndarray | None = None
        oof_true = np.zeros(len(ds.y), dtype=np.int64 if n_classes else np.float32)
        for fold, (_, va) in zip(folds, splits, strict=True):
            out = predict_tensors(fold.trainer, fold.val)
            if self.prepared.task == "regression":
                out = fold.target.inverse_transform(out)
                true = fold.target.inverse_transform(fold.val.y.numpy())
            else:
                true = fold.val.y.numpy()
            if oof_output is None:
                oof_output = np.full((len(ds.y), *out.shape[1:]), np.nan, dtype=np.float64)
            oof_output[va] = out
            oof_true[va] = true
        return CVResult(
            per_fold=[dict(v) for v in last_val],
            best_epochs=[int(f.trainer.best_epoch) for f in folds],
            oof_output=oof_output,
            oof_true=oof_true,
            history=history,
        )


def _flat_summary(result: CVResult) -> dict[str, float]:
    flat: dict[str, float] = {}
    for name, stats in result.summary().items():
        flat[f"cv_{name}_mean"] = stats["mean"]
        flat[f"cv_{name}_std"] = stats["std"]
        for i, v in enumerate(stats["per_fold"]):
            flat[f"fold{i + 1}_{name}"] = v
    flat["refit_epochs"] = float(result.refit_epochs)
    return flat


def cross_validate(
    prepared: PreparedData,
    config: Config,
    resume_from: str | Path | None = None,
    checkpointing: bool = False,
) -> CrossValidation:
    """Cross-validate ``config`` on ``prepared``; iterate the result for per-epoch metrics.

    With ``checkpointing`` the caller may call ``save_state`` after each item; ``resume_from``
    continues from such a folder at the next epoch. Settings left "auto" are decided here for
    this data (``resolve_auto``), as ``prepare_run`` does.
    """
    n_fit = fit_rows(prepared.dataset.n_samples, config.split)
    config = resolve_auto(config, prepared.dataset.modality, n_fit)
    return CrossValidation(prepared, config, resume_from, checkpointing)
