"""A search's flow: prepare the data once, run the trials on Ray Tune, refit and log the best.

``run_search`` = :func:`prepare_search` (load, clean, hold out the test part, resolve the
space and the metric, split and fit the folds once) ─► :func:`~orchestrator.tuner.run_tuner`
(the trials, with the MLflow parent run opened before and one writer thread for the trials'
runs) ─► :func:`refit_best` (the best configuration refit on all non-test data, tested once,
logged and registered).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import (
    Config,
    SearchConfig,
    apply_overrides,
    uses_fold_ensemble,
    validate_config,
)
from orchestrator.crossval import main_metric, metric_mode
from orchestrator.defaults import with_default_space
from orchestrator.errors import AutoMLError, ConfigError
from orchestrator.folds import FoldShape, PreparedData, fitted_preprocessor, precompute_folds
from orchestrator.pipeline import (
    PreparedRun,
    RefitResult,
    prepare_run,
    refit_and_test,
    test_model,
    torch_threads,
)
from orchestrator.predictor import FoldEnsemble
from orchestrator.ray_adapter import ensure_ray
from orchestrator.space import expected_trials, validate_space
from orchestrator.trials import TrialSummary, best_epochs, pick_best
from orchestrator.tuner import CONFIG_FILE, fold_models_dir, run_tuner

if TYPE_CHECKING:
    from orchestrator.tracking import SearchTracker
    from orchestrator.tracking.writer import TrialRunWriter


class SearchInterrupted(AutoMLError):
    """The search stopped before every trial ran (Ctrl-C); it can be resumed."""


@dataclass
class Budget:
    """The trials' time budget (``search.time_budget_s``) and the time they took."""

    seconds: float | None
    used_s: float

    @property
    def spent(self) -> bool:
        """Whether the budget ended the search (Tune stops within a moment of it)."""
        return self.seconds is not None and self.used_s >= self.seconds - 1.0

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "used_s": round(self.used_s, 1), "spent": self.spent}


@dataclass
class SearchResult:
    name: str
    path: str
    algorithm: str
    metric: str
    mode: str
    config: Config
    run: PreparedRun
    trials: list[TrialSummary]
    best: TrialSummary | None
    best_config: Config | None
    refit: RefitResult | None
    wall_s: float
    budget: Budget | None = None
    runs_url: str | None = None  # the experiment's training runs in the MLflow UI
    tracking_s: float = 0.0  # the driver's MLflow writer's busy time for the trials' runs
    tracking_cpu_s: float = 0.0  # the CPU time the writer's thread used for them

    def to_json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {
                "trial_id": self.best.trial_id,
                "config": self.best.config,
                "cv": self.best.cv,
                "test": self.refit.test_metrics if self.refit else None,
            }
        return {
            "name": self.name,
            "algorithm": self.algorithm,
            "metric": self.metric,
            "mode": self.mode,
            "num_trials": len(self.trials),
            "best": best,
            "trials": [t.to_json() for t in self.trials],
            "wall_s": self.wall_s,
            "time_budget": self.budget.to_json() if self.budget is not None else None,
            "mlflow_runs_url": self.runs_url,
        }


@dataclass
class SearchPlan:
    """What a search runs: the resolved config, the prepared data and where Tune keeps it."""

    config: Config  # with the default space, the metric and the mode filled in
    run: PreparedRun
    prepared: PreparedData  # what the trials get (folds fitted here unless the space varies them)
    parsed: dict
    name: str
    exp_dir: Path
    expected: int  # trials the finished search has

    @property
    def metric(self) -> str:
        return self.config.search.metric or ""

    @property
    def mode(self) -> str:
        return self.config.search.mode or "max"


def storage_root(path: str | None = None) -> Path:
    """The folder of Ray Tune's experiment folders: ``path`` (``--storage``,
    ``search.storage_path``), ./ray_results by default."""
    return Path(path or SearchConfig.model_fields["storage_path"].default).resolve()


def load_search_config(name: str, storage: str | None = None) -> Config:
    """The base config saved with an earlier search, for ``--resume``."""
    saved = storage_root(storage) / name / CONFIG_FILE
    if not saved.is_file():
        root = storage_root(storage)
        known = (
            sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())
            if root.is_dir()
            else []
        )
        raise ConfigError(
            f"no search named '{name}' to resume under {root}; known: {', '.join(known) or 'none'}"
        )
    return validate_config(json.loads(saved.read_text()), str(saved))


def run_search(
    config: Config,
    *,
    name: str | None = None,
    resume: bool = False,
    address: str | None = None,
    storage: str | None = None,
    callbacks: list | None = None,
    on_trial: Callable[[TrialSummary], None] | None = None,
    refit: bool = True,
) -> SearchResult:
    """Run (or resume) a search, then refit the best configuration and test it once.

    With tracking on, the MLflow parent run is opened before any trial starts (a store that
    cannot be used stops the search there, with one line) and always ends: FINISHED, FAILED,
    or KILLED when interrupted.
    """
    started = time.perf_counter()
    ensure_ray(address)
    plan = prepare_search(config, name, storage)
    tracker = writer = None
    if plan.config.tracking.enabled:
        tracker, writer = start_tracking(plan, resume)
    try:
        tuner_started = time.perf_counter()
        trials = run_tuner(
            *(plan.config, plan.prepared, plan.parsed, plan.name, plan.exp_dir),
            *(resume, writer, callbacks, on_trial),
        )
        budget = Budget(plan.config.search.time_budget_s, time.perf_counter() - tuner_started)
        if tracker is not None:
            _close_trial_runs(tracker, writer, trials, budget)
        if len(trials) < plan.expected and not budget.spent:
            raise SearchInterrupted(
                f"search '{plan.name}' was interrupted after {len(trials)} of {plan.expected} "
                f"trials; continue it with: automl search --resume {plan.name}"
            )
        best, best_config, refit_result = refit_best(plan, trials, tracker, refit)
    except BaseException as exc:  # an error or an interrupt: the parent never stays RUNNING
        if tracker is not None:
            killed = isinstance(exc, KeyboardInterrupt | SearchInterrupted)
            tracker.finish("KILLED" if killed else "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    if tracker is not None:
        tracker.finish("FINISHED")
    return SearchResult(
        *(plan.name, str(plan.exp_dir), plan.config.search.algorithm, plan.metric, plan.mode),
        *(plan.config, plan.run, trials, best, best_config, refit_result),
        wall_s=time.perf_counter() - started,
        budget=budget,
        runs_url=_runs_url(tracker),
        tracking_s=writer.seconds if writer is not None else 0.0,
        tracking_cpu_s=writer.cpu_seconds if writer is not None else 0.0,
    )


def _runs_url(tracker: SearchTracker | None) -> str | None:
    if tracker is None or tracker.experiment_id is None:
        return None
    from orchestrator.tracking.keys import runs_view_url

    return runs_view_url(tracker.tracking_uri, tracker.experiment_id)


def _close_trial_runs(
    tracker: SearchTracker, writer: TrialRunWriter, trials: list, budget: Budget
) -> None:
    """Trial runs left open end as Tune ended their trials; tracking failures are tagged; the
    parent run records the time the trials used against their budget."""
    tracker.close_open_trials({t.trial_id: (t.status, t.error) for t in trials})
    if writer.errors:
        tracker.set_tags({"automl.tracking_errors": "; ".join(writer.errors)})
    if budget.seconds is not None:
        tracker.log_metrics({"time_used_s": budget.used_s})
        tracker.set_tags({"automl.budget_exhausted": str(budget.spent).lower()})


def prepare_search(config: Config, name: str | None, storage: str | None) -> SearchPlan:
    """Load, clean and hold out the test part once; resolve the space, the metric and the
    mode; split and fit the folds the trials share."""
    run = prepare_run(config)
    config = with_default_space(run.config, run.prepared.family, run.prepared.dataset.modality)
    parsed = validate_space(config)
    metric = config.search.metric or main_metric(run.prepared.task)
    mode = config.search.mode or metric_mode(metric)
    config = apply_overrides(config, {"search.metric": metric, "search.mode": mode})
    name = name or config.tracking.experiment or time.strftime("search-%Y%m%d-%H%M%S")
    exp_dir = storage_root(storage or config.search.storage_path) / name
    expected = expected_trials(parsed, config.search.algorithm, config.search.num_samples)
    prepared = trial_data(run.prepared, config)
    return SearchPlan(config, run, prepared, parsed, name, exp_dir, expected)


def start_tracking(plan: SearchPlan, resume: bool) -> tuple[SearchTracker, TrialRunWriter]:
    """The search's MLflow parent run (a new one, the ``mlflow run`` run, or a resumed
    search's), and the writer of the trials' child runs under it."""
    from orchestrator.tracking import SearchTracker, describe_dataset
    from orchestrator.tracking.writer import TrialRunWriter

    config, run = plan.config, plan.run
    tracker = SearchTracker(config.tracking.tracking_uri, config.tracking.experiment or plan.name)
    tracker.start(
        config,
        plan.name,
        tags={
            "automl.family": run.prepared.family,
            "automl.task": run.prepared.task,
            "automl.ray_experiment": str(plan.exp_dir),
        },
        params={"search.space": json.dumps(config.search.space)},
        dataset=describe_dataset(run),
        resume=resume,
        metric=plan.metric,
        mode=plan.mode,
    )
    writer = TrialRunWriter(
        tracker.ids,
        config,
        run.prepared.task,
        run.cleaning.to_dict(),
        reattach=resume or config.search.max_failures > 0,
    )
    return tracker, writer


def refit_best(
    plan: SearchPlan, trials: list[TrialSummary], tracker: SearchTracker | None, refit: bool
) -> tuple[TrialSummary | None, Config | None, RefitResult | None]:
    """The best trial, its config, and (with ``refit``) that config refit on all non-test data,
    tested once and, with a tracker, logged as a model and registered."""
    best = pick_best(trials, plan.metric, plan.mode)
    if best is None:
        return None, None, None
    best_config = apply_overrides(plan.config, best.config)
    if not refit:
        return best, best_config, None
    ensemble = best_fold_models(plan, best, best_config)
    if ensemble is not None:
        with torch_threads(best_config.training.num_threads):
            result = test_model(plan.run, ensemble, None)
    else:
        result = refit_and_test(plan.run, best_config, best_epochs(best, best_config))
    if tracker is not None:
        from orchestrator.serving import log_predictor
        from orchestrator.tracking import log_refit

        result.tracking = log_refit(
            tracker,
            result,
            best_config,
            class_names=_classes(result),
            registered_model=plan.config.tracking.registered_model,
            metric=plan.metric,
            mode=plan.mode,
            input_example=_input_example(plan.run),
            log_model=log_predictor,
        )
    return best, best_config, result


def best_fold_models(
    plan: SearchPlan, best: TrialSummary, best_config: Config
) -> FoldEnsemble | None:
    """The best trial's fold models as one (``search.refit: folds``), as ``FoldModels`` kept
    them; None where the config asks for a refit, or the trial's models are not there (a
    trial of a search that an older version started): the best configuration is then refit.
    The other trials' kept models are removed."""
    folder = fold_models_dir(plan.exp_dir)
    path = folder / f"{best.trial_id}.pkl"
    wanted = uses_fold_ensemble(best_config)
    ensemble = None
    if wanted and path.is_file():
        with path.open("rb") as fh:
            ensemble = with_preprocessing(pickle.load(fh), plan.prepared, best_config)
    if folder.is_dir():
        for other in folder.iterdir():
            if other != path:
                other.unlink(missing_ok=True)
    return ensemble


def with_preprocessing(
    ensemble: FoldEnsemble, prepared: PreparedData, config: Config
) -> FoldEnsemble | None:
    """``ensemble`` with each member's fitted preprocessing: a trial on folds the driver
    fitted has only their shape (``FoldShape``); the driver kept the fitted parts. None if one
    is missing."""
    members = []
    for i, member in enumerate(ensemble.members):
        if isinstance(member.preprocessor, FoldShape):
            fitted = fitted_preprocessor(prepared, config, i)
            if fitted is None:
                return None
            member = dataclasses.replace(member, preprocessor=fitted)
        members.append(member)
    return FoldEnsemble(members)


def _classes(refit: RefitResult) -> list[str] | None:
    target = refit.predictor.target
    return [str(c) for c in target.classes_] if refit.predictor.task == "classification" else None


def _input_example(run: PreparedRun, n: int = 5) -> Any:
    X = run.prepared.dataset.X
    return X.head(n) if hasattr(X, "head") else X[:n]


# a space over these keys changes the folds from trial to trial: the trials fit their own
FOLD_KEYS = ("data.", "split.", "seed")


def trial_data(prepared: PreparedData, config: Config) -> PreparedData:
    """What the trials get: ``prepared`` with its folds split and fitted once, here, unless
    the space varies what they depend on (the trials then fit their own). The trial workers
    so need no scikit-learn (~1.2 s of CPU each at start-up, while the driver is busy too)
    and fit no fold twice."""
    varies = [k for k in config.search.space if not k.startswith("data.augment.")]
    if any(key.startswith(FOLD_KEYS) for key in varies):
        return prepared
    return precompute_folds(prepared, config)
