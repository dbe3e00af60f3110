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
from orchestrator.ray_adapter import check_trial_resources, ensure_ray
from orchestrator.searchers import WarmTrial
from orchestrator.searchresult import Budget, SearchResult
from orchestrator.searchtracking import (
    close_trial_runs,
    end_parent,
    log_report,
    runs_url,
    start_tracking,
    store_gone,
)
from orchestrator.space import SearchSpace
from orchestrator.trials import (
    TrialSummary,
    best_epochs,
    pareto_front,
    pick_best,
    pick_from_front,
)
from orchestrator.tuner import CONFIG_FILE, fold_models_dir, objectives, run_tuner

if TYPE_CHECKING:
    from orchestrator.tracking import SearchTracker


class SearchInterrupted(AutoMLError):
    """The search stopped before every trial ran (Ctrl-C); it can be resumed."""


@dataclass
class SearchPlan:
    """What a search runs: the resolved config, the prepared data and where Tune keeps it."""

    config: Config  # with the default space, the metric and the mode filled in
    run: PreparedRun
    prepared: PreparedData  # what the trials get (folds fitted here unless the space varies them)
    space: SearchSpace
    name: str
    exp_dir: Path
    expected: int  # trials the finished search has
    warm: list[WarmTrial] = dataclasses.field(default_factory=list)  # --warm-start's trials

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
    started, started_at = time.perf_counter(), time.time()
    preflight(config, address)
    plan = prepare_search(config, name, storage)
    tracker = writer = None
    if plan.config.tracking.enabled:
        tracker, writer = start_tracking(plan, resume, started_at)
    try:
        trials, budget = run_trials(plan, resume, tracker, writer, callbacks, on_trial)
        best, front = choose_best(plan, trials, tracker)
        best_config, refit_result = refit_best(plan, best, tracker, refit)
    except BaseException as exc:  # an error or an interrupt: the parent never stays RUNNING
        if tracker is not None:
            killed = isinstance(exc, KeyboardInterrupt | SearchInterrupted)
            status = "KILLED" if killed else "FAILED"
            end_parent(tracker, writer, status, f"{type(exc).__name__}: {exc}")
        raise
    if tracker is not None:
        log_report(tracker)
        tracker.finish("FINISHED")
    goal = objectives(plan.config)
    return SearchResult(
        *(plan.name, str(plan.exp_dir), plan.config.search.algorithm, plan.metric, plan.mode),
        *(plan.config, plan.run, trials, best, best_config, refit_result),
        wall_s=time.perf_counter() - started,
        budget=budget,
        runs_url=runs_url(tracker),
        tracking_s=writer.seconds if writer is not None else 0.0,
        tracking_cpu_s=writer.cpu_seconds if writer is not None else 0.0,
        objectives=list(zip(goal.metrics, goal.modes, strict=True)),
        pareto=front,
    )


def preflight(config: Config, address: str | None) -> None:
    """What can be refused at once is, with one line, before the data is read: a tracking
    server that does not answer (before Ray starts), a space the user gave that cannot be
    searched, resources no node has (once Ray is up or joined)."""
    if config.tracking.enabled:
        from orchestrator.tracking.resilient import check_reachable
        from orchestrator.tracking.stores import resolve_tracking_uri

        check_reachable(resolve_tracking_uri(config.tracking.tracking_uri))
    if config.search.space:
        SearchSpace.of(config)
    ensure_ray(address)
    check_trial_resources(config.search.cpus_per_trial, config.search.gpus_per_trial)


def run_trials(plan, resume, tracker, writer, callbacks, on_trial) -> tuple[list, Budget]:
    """The trials on Ray Tune, their runs closed; how long they took against the budget.
    An interrupted search (not one its budget ended) is :class:`SearchInterrupted`."""
    started = time.perf_counter()
    trials = run_tuner(
        *(plan.config, plan.prepared, plan.space, plan.name, plan.exp_dir),
        *(resume, writer, callbacks, on_trial),
        warm=plan.warm if not resume else None,
    )
    budget = Budget(plan.config.search.time_budget_s, time.perf_counter() - started)
    if writer is not None and writer.offline is not None:
        raise store_gone(plan, writer)
    if writer is not None and writer.disk_full is not None:
        raise writer.disk_full  # the trials' runs it hit ended FAILED
    if tracker is not None:
        close_trial_runs(tracker, writer, trials, budget)
    if len(trials) < plan.expected and not budget.spent:
        raise SearchInterrupted(
            f"search '{plan.name}' was interrupted after {len(trials)} of {plan.expected} "
            f"trials; continue it with: automl search --resume {plan.name}"
        )
    return trials, budget


def prepare_search(config: Config, name: str | None, storage: str | None) -> SearchPlan:
    """Load, clean and hold out the test part once; resolve the space, the metric and the
    mode; split and fit the folds the trials share."""
    run = prepare_run(config)
    config = with_default_space(run.config, run.prepared.family, run.prepared.dataset.modality)
    space = SearchSpace.of(config)
    config = with_objectives(config, run.prepared.task)
    name = name or config.tracking.experiment or time.strftime("search-%Y%m%d-%H%M%S")
    exp_dir = storage_root(storage or config.search.storage_path) / name
    expected = space.expected_trials(config.search.algorithm, config.search.num_samples)
    prepared = trial_data(run.prepared, config)
    warm = warm_trials(config, run, space) if config.search.warm_start else []
    return SearchPlan(config, run, prepared, space, name, exp_dir, expected, warm)


# objectives that are costs of the network rather than validation metrics
COSTS = ("predict_ms", "n_params")


def with_objectives(config: Config, task: str) -> Config:
    """``search.metric`` and ``search.mode`` filled in (the first of two ``search.metrics``,
    else the task's main metric) and ``search.modes`` for two."""
    search = config.search
    for metric in search.metrics:
        if not metric.startswith("val_") and metric not in COSTS:
            raise ConfigError(
                f"search.metrics: '{metric}' is not an objective; use a validation metric "
                f"(val_accuracy, val_f1, val_loss, val_r2, ...) or a cost: {', '.join(COSTS)}"
            )
    metric = search.metrics[0] if search.metrics else search.metric or main_metric(task)
    mode = (search.modes or [None])[0] or search.mode or metric_mode(metric)
    modes = list(search.modes) or ["min" if m in COSTS else metric_mode(m) for m in search.metrics]
    return apply_overrides(
        config, {"search.metric": metric, "search.mode": mode, "search.modes": modes}
    )


def warm_trials(config: Config, run: PreparedRun, space: SearchSpace) -> list[WarmTrial]:
    """``search.warm_start``'s finished trials on the same data, as points of ``space``."""
    if config.search.algorithm != "bayes":
        raise ConfigError(
            f"--warm-start seeds a bayes search; search.algorithm is "
            f"'{config.search.algorithm}' (use --algorithm bayes)"
        )
    from orchestrator.tracking import describe_dataset
    from orchestrator.tracking.warmstart import finished_trials

    metrics = objectives(config).metrics
    digest = describe_dataset(run)["digest"]
    found = finished_trials(config.tracking.tracking_uri, config.search.warm_start, digest, metrics)
    warm = []
    for params, values in found:
        point = space.point_of(params)
        if point is not None:
            warm.append(WarmTrial(point, values))
    return warm


def choose_best(
    plan: SearchPlan, trials: list[TrialSummary], tracker: SearchTracker | None
) -> tuple[TrialSummary | None, list[TrialSummary] | None]:
    """The best trial, and with two objectives their Pareto front (each trial's run tagged
    ``pareto=true|false``) with the trial ``search.pick`` takes from it."""
    goal, search = objectives(plan.config), plan.config.search
    if not goal.multi:
        return pick_best(trials, plan.metric, plan.mode), None
    front = pareto_front(trials, goal.metrics, goal.modes)
    best = pick_from_front(front, goal.metrics, goal.modes, search.pick, search.pick_tolerance)
    if tracker is not None:
        on_front = {t.trial_id for t in front}
        tracker.tag_trials(
            {t.trial_id: {"pareto": str(t.trial_id in on_front).lower()} for t in trials}
        )
        if best is not None:
            tracker.set_tags({"automl.picked_trial": best.trial_id})
    return best, front


def refit_best(
    plan: SearchPlan, best: TrialSummary | None, tracker: SearchTracker | None, refit: bool
) -> tuple[Config | None, RefitResult | None]:
    """``best``'s config and (with ``refit``) its final model: the trial's fold models, or
    that config refit on all non-test data; tested once and, with a tracker, logged as a model
    and registered."""
    if best is None:
        return None, None
    best_config = apply_overrides(plan.config, best.config)
    if not refit:
        return best_config, None
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
    return best_config, result


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
