"""One configuration end to end: load ─► clean ─► split ─► cross-validate ─► refit ─► test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from data import (
    CleaningReport,
    Dataset,
    clean_dataset,
    detect_task,
    holdout_split,
    load_dataset,
)
from models import compute_metrics, confusion_matrix, error_analysis
from orchestrator.autoconfig import resolve_auto
from orchestrator.config import (
    SEQUENCE_FAMILIES,
    Config,
    apply_overrides,
    uses_fold_ensemble,
)
from orchestrator.crossval import (
    CrossValidation,
    CVResult,
    PreparedData,
    cross_validate,
    effective_family,
    fit_fold,
    fit_rows,
    fold_seed,
    stacked_trainer,
)
from orchestrator.errors import ConfigError
from orchestrator.predictor import FoldEnsemble, Predictor

DEFAULT_FAMILY = {"table": "fnn", "image": "cnn", "sequence": "resnet1d"}
# model auto on sequences longer than resnet1d's receptive field: each of its 3 blocks sees
# 7 + 4 + 2 more steps (kernels 8, 5, 3), 40 in all (Wang et al. 2017). A pattern longer than
# that (a slow period, say) it can only average; InceptionTime's kernels of up to 40 steps in 6
# modules see ~235 (Ismail Fawaz et al. 2020), at ~2.5-4x the training time.
RESNET1D_FIELD = 40
LONG_SERIES_FAMILY = "inception"
FAMILY_MODALITIES = {
    "fnn": ("table",),
    "cnn": ("image",),
    **{f: ("sequence",) for f in SEQUENCE_FAMILIES},
}


@dataclass
class PreparedRun:
    """Everything before training: the non-test data for CV, and the held-out test set."""

    prepared: PreparedData
    test: Dataset
    cleaning: CleaningReport
    source: str
    notes: list[str] = field(default_factory=list)
    # the run's configuration with its "auto" settings decided for this data (resolve_auto)
    config: Config | None = None


@dataclass
class RefitResult:
    """The best configuration refit on all non-test data and evaluated once on the test set."""

    test_metrics: dict[str, float]
    test_confusion: np.ndarray | None
    test_errors: Any  # pandas.DataFrame of the worst test predictions
    predictor: Predictor | FoldEnsemble
    epochs: int | None  # the refit's epochs; None for the fold ensemble
    tracking: dict[str, Any] | None = None  # run id, model URI, registered version (if logged)

    @property
    def kind(self) -> str:
        """``folds`` (the k fold models as one) or ``best`` (the configuration trained again)."""
        return "folds" if isinstance(self.predictor, FoldEnsemble) else "best"


@dataclass
class TrainResult:
    config: Config
    run: PreparedRun
    cv: CVResult
    refit: RefitResult

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.refit.test_metrics

    @property
    def predictor(self) -> Predictor | FoldEnsemble:
        return self.refit.predictor

    def to_json(self) -> dict[str, Any]:
        ds = self.run.prepared.dataset
        return {
            "task": self.run.prepared.task,
            "model": self.run.prepared.family,
            "dataset": {
                "source": self.run.source,
                "modality": ds.modality,
                "n_samples": int(ds.n_samples + self.run.test.n_samples),
                "n_features": int(ds.n_features),
            },
            "cv": {"folds": len(self.cv.per_fold), "metrics": self.cv.summary()},
            "test": {k: _jsonable(v) for k, v in self.test_metrics.items()},
            "refit": self.refit.kind,
            "refit_epochs": self.refit.epochs,
            "cleaning": self.run.cleaning.to_dict(),
            "notes": self.run.notes,
            "config": self.config.model_dump(),
        }


def _jsonable(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def resolve_family(requested: str, modality: str, steps: int | None = None) -> str:
    """The family ``requested`` (checked against the data's modality), or ``auto``'s: by
    modality, and for sequences by the longest series' ``steps`` too."""
    if requested == "auto":
        if modality == "sequence" and steps is not None and steps > RESNET1D_FIELD:
            return LONG_SERIES_FAMILY
        return DEFAULT_FAMILY[modality]
    allowed = FAMILY_MODALITIES[requested]
    if modality not in allowed:
        fitting = [f for f, mods in FAMILY_MODALITIES.items() if modality in mods]
        raise ConfigError(
            f"model.family '{requested}' needs {' or '.join(allowed)} data, but the data was read "
            f"as {modality}; use one of: auto, {', '.join(fitting)} (or set --modality)"
        )
    return requested


def prepare_run(config: Config) -> PreparedRun:
    """Load and clean the data, detect the task, hold out the test set."""
    dc = config.data
    load = dict(
        target=dc.target,
        modality=dc.modality,
        family=config.model.family,
        group_column=dc.group_column,
    )
    ds = load_dataset(dc.source, **load)
    task = detect_task(ds.y, dc.task, name=dc.target)
    ds, report = clean_dataset(ds, dc.cleaning, task)
    steps = int(np.shape(ds.X)[1]) if ds.modality == "sequence" else None
    family = resolve_family(config.model.family, ds.modality, steps)
    notes = list(ds.notes)
    if config.model.family == "auto":
        why = f", series of up to {steps} steps" if steps is not None else ""
        notes.append(f"model auto: {ds.modality} data{why}, so family '{family}'")
    if dc.test_source:
        # rows are kept (the preprocessor imputes); only the target's spelling is fixed and
        # rows without a target dropped
        test_cleaning = dc.cleaning.model_copy(
            update={
                "drop_duplicates": False,
                "drop_constant": False,
                "numeric_impute": "median",
                "categorical_impute": "most_frequent",
            }
        )
        test, _ = clean_dataset(load_dataset(dc.test_source, **load), test_cleaning, task)
        trainval = ds
    else:
        tv_idx, test_idx = holdout_split(
            ds.y, task, config.split.test_size, fold_seed(config.seed, 0), groups=ds.groups
        )
        trainval, test = ds.subset(tv_idx), ds.subset(test_idx)
    resolved = resolve_auto(config, ds.modality, fit_rows(trainval.n_samples, config.split))
    prepared = PreparedData(
        dataset=trainval,
        task=task,
        family=family,
        class_names=ds.class_names,
        groups=trainval.groups,
    )
    return PreparedRun(prepared, test, report, dc.source, notes, resolved)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (``training.num_threads``) for the block; None
    keeps torch's own choice (one per core)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def final_model(run: PreparedRun, config: Config, cv: CrossValidation) -> RefitResult:
    """The model that ``search.refit`` asks for after cross-validation ``cv``, tested once:
    the k fold models as one (``folds``, when there are k >= 2 folds), or a refit (``best``)."""
    if uses_fold_ensemble(config):
        with torch_threads(config.training.num_threads):
            return test_model(run, cv.ensemble(), None)
    return refit_and_test(run, config, cv.result.refit_epochs)


def refit_and_test(run: PreparedRun, config: Config, epochs: int) -> RefitResult:
    """Refit on all non-test data for ``epochs`` (the folds' choice) and test once."""
    with torch_threads(config.training.num_threads):
        return test_model(run, refit(run, config, epochs), epochs)


def refit(run: PreparedRun, config: Config, epochs: int) -> Predictor:
    """The configuration trained on all non-test data for ``epochs``."""
    prepared = run.prepared
    ds = prepared.dataset
    refit_cfg = apply_overrides(config, {"training.epochs": epochs})
    fitted = fit_fold(
        ds,
        np.arange(ds.n_samples),
        None,
        prepared,
        refit_cfg,
        fold_seed(config.seed, 2),
        early_stop=False,
    )
    # a stack of one where the family fuses: the stacked optimizer's step, unlike torch.optim's,
    # does not import torch._dynamo (~2.5 s in the driver; models/lazy_dynamo.py)
    family = effective_family(config, prepared)
    stacked = stacked_trainer([fitted.trainer], family, refit_cfg.training.fuse_folds)
    (stacked or fitted.trainer).fit()
    return Predictor(
        preprocessor=fitted.preprocessor,
        target=fitted.target,
        network=fitted.trainer.model,
        task=prepared.task,
        family=family,
        modality=ds.modality,
        input_types=ds.column_types,
    )


def test_model(
    run: PreparedRun, predictor: Predictor | FoldEnsemble, epochs: int | None
) -> RefitResult:
    """``predictor`` evaluated once on the held-out test set."""
    output = predictor.predict_output(run.test.X, run.test.lengths)
    task, target = run.prepared.task, predictor.target
    if task == "classification":
        y_true = target.transform(run.test.y)
        n_classes = target.n_classes_
        metrics = compute_metrics(task, y_true, output, n_classes)
        confusion = confusion_matrix(y_true, output.argmax(axis=1), n_classes)
        names = list(target.classes_)
    else:
        y_true = np.asarray(run.test.y, dtype=np.float64)
        metrics = compute_metrics(task, y_true, output)
        confusion, names = None, None
    errors = error_analysis(task, y_true, output, class_names=names)
    return RefitResult(metrics, confusion, errors, predictor, epochs)


def run_training(
    config: Config, on_epoch: Callable[[dict[str, float]], None] | None = None
) -> TrainResult:
    """Cross-validate one configuration, refit it and evaluate it on the test set."""
    run = prepare_run(config)
    config = run.config
    cv = cross_validate(run.prepared, config)
    with torch_threads(config.training.num_threads):
        for metrics in cv:
            if on_epoch is not None:
                on_epoch(metrics)
    return TrainResult(config, run, cv.result, final_model(run, config, cv))
