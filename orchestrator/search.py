"""Ray Tune set-up: searcher, scheduler, resources, resume, and the refit of the best trial."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator.config import Config, apply_overrides, validate_config
from orchestrator.crossval import main_metric, metric_mode
from orchestrator.defaults import with_default_space
from orchestrator.errors import AutoMLError, ConfigError
from orchestrator.pipeline import PreparedRun, RefitResult, prepare_run, refit_and_test
from orchestrator.space import (
    decode_point,
    expected_trials,
    grid_size,
    to_tune_space,
    validate_space,
)

CONFIG_FILE = "automl_config.json"


class SearchInterrupted(AutoMLError):
    """The search stopped before every trial ran (Ctrl-C); it can be resumed."""


@dataclass
class TrialSummary:
    trial_id: str
    status: str  # TERMINATED, STOPPED (early, by the scheduler) or ERROR
    config: dict[str, Any]
    cv: dict[str, dict[str, Any]]
    epochs: int
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    index: int = 0  # creation order within the search

    def to_json(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "status": self.status,
            "config": self.config,
            "cv": self.cv,
            "epochs": self.epochs,
            "error": self.error,
        }


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
        }


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray embedded on this machine, or join ``address`` / ``RAY_ADDRESS``."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "configure_logging": False,
        "log_to_driver": False,
    }
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)


def build_searcher(config: Config, parsed: dict, metric: str, mode: str, max_concurrent: int):
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    search = config.search
    if search.algorithm in ("grid", "random"):
        return BasicVariantGenerator(random_state=config.seed, max_concurrent=max_concurrent)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    if search.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=_startup(search))
    else:
        sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=_startup(search))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(metric=metric, mode=mode, sampler=sampler)
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def _startup(search) -> int:
    """Random start-up trials before the model-based sampler takes over."""
    return max(2, min(10, search.num_samples // 3))


def build_scheduler(config: Config, metric: str, mode: str):
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    search, epochs = config.search, config.training.epochs
    kind = search.scheduler
    if kind == "fifo":
        return None
    if kind == "asha":
        return ASHAScheduler(
            metric=metric,
            mode=mode,
            time_attr="training_iteration",
            max_t=epochs,
            grace_period=min(search.grace_period, epochs),
            reduction_factor=search.reduction_factor,
        )
    if kind == "hyperband":
        return HyperBandScheduler(
            metric=metric,
            mode=mode,
            time_attr="training_iteration",
            max_t=epochs,
            reduction_factor=search.reduction_factor,
        )
    return MedianStoppingRule(
        metric=metric,
        mode=mode,
        time_attr="training_iteration",
        grace_period=search.grace_period,
        min_samples_required=2,
    )


def storage_root(path: str | None = None) -> Path:
    return Path(path or os.environ.get("AUTOML_RESULTS", "ray_results")).resolve()


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
    """Run (or resume) a search, then refit the best configuration and test it once."""
    started = time.perf_counter()
    run = prepare_run(config)
    config = with_default_space(config, run.prepared.family)
    search = config.search
    parsed = validate_space(config)
    metric = search.metric or main_metric(run.prepared.task)
    mode = search.mode or metric_mode(metric)
    config = apply_overrides(config, {"search.metric": metric, "search.mode": mode})
    name = name or config.tracking.experiment or time.strftime("search-%Y%m%d-%H%M%S")
    exp_dir = storage_root(storage) / name

    tracker = None
    if config.tracking.enabled:
        from orchestrator.tracking import SearchTracker, describe_dataset

        # before Ray starts: the tracker takes MLFLOW_RUN_ID (set by `mlflow run`) out of the
        # environment, so that workers cannot inherit it and collapse every trial into one run
        tracker = SearchTracker(config.tracking.tracking_uri, config.tracking.experiment or name)
        tracker.start(
            config,
            name,
            tags={
                "automl.family": run.prepared.family,
                "automl.task": run.prepared.task,
                "automl.ray_experiment": str(exp_dir),
            },
            params={"search.space": json.dumps(search.space)},
            dataset=describe_dataset(run),
            resume=resume,
            metric=metric,
            mode=mode,
        )
    try:
        trials = _tune(
            config,
            run,
            parsed,
            name,
            exp_dir,
            resume,
            address,
            callbacks,
            on_trial,
            tracker.ids if tracker else None,
        )
        if tracker is not None:
            tracker.close_open_trials({t.trial_id: (t.status, t.error) for t in trials})
        expected = expected_trials(parsed, search.algorithm, search.num_samples)
        if len(trials) < expected:
            raise SearchInterrupted(
                f"search '{name}' was interrupted after {len(trials)} of {expected} trials; "
                f"continue it with: automl search --resume {name}"
            )
        best = pick_best(trials, metric, mode)
        best_config, refit_result = None, None
        if best is not None:
            best_config = apply_overrides(config, best.config)
            if refit:
                refit_result = refit_and_test(run, best_config, best_epochs(best, best_config))
                if tracker is not None:
                    from orchestrator.tracking import log_refit

                    refit_result.tracking = log_refit(
                        tracker,
                        refit_result,
                        best_config,
                        class_names=_classes(refit_result),
                        registered_model=config.tracking.registered_model,
                        metric=metric,
                        mode=mode,
                        input_example=_input_example(run),
                    )
    except BaseException as exc:  # an error or an interrupt: the parent never stays RUNNING
        if tracker is not None:
            killed = isinstance(exc, KeyboardInterrupt | SearchInterrupted)
            status = "KILLED" if killed else "FAILED"
            tracker.finish(status, error=f"{type(exc).__name__}: {exc}")
        raise
    if tracker is not None:
        tracker.finish("FINISHED")
    return SearchResult(
        name,
        str(exp_dir),
        search.algorithm,
        metric,
        mode,
        config,
        run,
        trials,
        best,
        best_config,
        refit_result,
        time.perf_counter() - started,
    )


def _classes(refit: RefitResult) -> list[str] | None:
    target = refit.predictor.target
    return [str(c) for c in target.classes_] if refit.predictor.task == "classification" else None


def _input_example(run: PreparedRun, n: int = 5) -> Any:
    X = run.prepared.dataset.X
    return X.head(n) if hasattr(X, "head") else X[:n]


def _tune(config, run, parsed, name, exp_dir, resume, address, callbacks, on_trial, ids):
    """Submit the trials to Ray Tune (or resume them) and summarise every trial."""
    from orchestrator.trial import run_trial

    search = config.search
    ensure_ray(address)
    import ray

    total_cpus = int(ray.cluster_resources().get("CPU", 1))
    max_concurrent = search.max_concurrent or max(1, int(total_cpus // search.cpus_per_trial))
    # with a model-based searcher Ray keeps one pending trial unless told otherwise
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max_concurrent)

    trainable = tune.with_parameters(
        run_trial,
        prepared=run.prepared,
        base_config=config,
        tracking=ids,
        cleaning=run.cleaning.to_dict(),
    )
    trainable = tune.with_resources(
        trainable, {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial}
    )
    run_config = tune.RunConfig(
        name=name,
        storage_path=str(exp_dir.parent),
        failure_config=tune.FailureConfig(max_failures=search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        callbacks=[TrialPrinter(on_trial), *(callbacks or [])],
        verbose=0,
    )
    if resume:
        tuner = tune.Tuner.restore(
            str(exp_dir), trainable, resume_unfinished=True, resume_errored=search.max_failures > 0
        )
    else:
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / CONFIG_FILE).write_text(json.dumps(config.model_dump(), indent=2))
        if search.algorithm == "grid" and grid_size(parsed) > 10_000:
            raise ConfigError(f"the grid has {grid_size(parsed)} points; at most 10000 allowed")
        metric, mode = search.metric, search.mode
        tuner = tune.Tuner(
            trainable,
            param_space=to_tune_space(parsed, search.algorithm),
            tune_config=tune.TuneConfig(
                search_alg=build_searcher(config, parsed, metric, mode, max_concurrent),
                scheduler=build_scheduler(config, metric, mode),
                num_samples=1 if search.algorithm == "grid" else search.num_samples,
                reuse_actors=True,
            ),
            run_config=run_config,
        )
    grid = tuner.fit()
    trials = [summarize(result, config.training.epochs) for result in grid]
    return sorted(trials, key=lambda t: t.index)


def summarize(result, max_epochs: int) -> TrialSummary:
    """One Ray Tune result as a trial row: config overrides, CV metrics, status, error."""
    metrics = dict(result.metrics or {})
    trial_id = str(metrics.get("trial_id") or Path(result.path).name)
    # the trial folder is "<trainable>_<trial id>_<creation index>_<params>_<date>"
    found = re.search(rf"{re.escape(trial_id)}_(\d+)_", Path(result.path).name)
    index = int(found.group(1)) if found else 0
    config = decode_point(dict(result.config or {}))
    cv: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        if key.startswith("cv_") and key.endswith("_mean"):
            name = key[3:-5]
            per_fold = [
                metrics[k]
                for k in sorted(metrics, key=_fold_order)
                if k.startswith("fold") and k.endswith(f"_{name}")
            ]
            cv[name] = {"mean": value, "std": metrics.get(f"cv_{name}_std"), "per_fold": per_fold}
    if not cv:  # stopped early by the scheduler (or failed): the last fold-mean values
        cv = {
            k[4:]: {"mean": v, "std": None, "per_fold": []}
            for k, v in metrics.items()
            if k.startswith("val_")
        }
    epochs = int(metrics.get("epoch", 0) or 0)
    if result.error is not None:
        status, error = "ERROR", _error_line(result.error)
    elif "refit_epochs" not in metrics and epochs < max_epochs:
        status, error = "STOPPED", None
    else:
        status, error = "TERMINATED", None
    return TrialSummary(trial_id, status, config, cv, epochs, error, metrics, index)


def _fold_order(key: str) -> tuple[int, str]:
    digits = "".join(c for c in key.split("_")[0] if c.isdigit())
    return (int(digits) if digits else 0, key)


def _error_line(error: BaseException) -> str:
    """The root cause as one line (Ray wraps the trial's exception)."""
    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def pick_best(trials: list[TrialSummary], metric: str, mode: str) -> TrialSummary | None:
    name = metric.removeprefix("val_")
    scored = [
        t
        for t in trials
        if t.status != "ERROR"
        and name in t.cv
        and t.cv[name]["mean"] is not None
        and t.cv[name]["mean"] == t.cv[name]["mean"]
    ]
    if not scored:
        return None
    sign = 1 if mode == "max" else -1
    # prefer trials that ran to the end: scheduler-stopped ones were judged worse at a rung
    return max(scored, key=lambda t: (t.status == "TERMINATED", sign * t.cv[name]["mean"]))


def best_epochs(trial: TrialSummary, config: Config) -> int:
    return int(trial.metrics.get("refit_epochs") or trial.epochs or config.training.epochs)


class TrialPrinter(tune.Callback):
    """A Tune callback on the driver that hands each finished trial to ``on_trial``."""

    def __init__(self, on_trial: Callable[[TrialSummary], None] | None) -> None:
        self.on_trial = on_trial

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if self.on_trial is not None:
            self.on_trial(_live_summary(trial, "TERMINATED"))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        if self.on_trial is not None:
            self.on_trial(_live_summary(trial, "ERROR"))


def _live_summary(trial, status: str) -> TrialSummary:
    metrics = dict(trial.last_result or {})
    cv = {
        k[4:]: {"mean": v, "std": metrics.get(f"cv_{k[4:]}_std"), "per_fold": []}
        for k, v in metrics.items()
        if k.startswith("val_")
    }
    error = None
    if status == "ERROR":
        error = (getattr(trial, "error_msg", None) or "").strip().splitlines()[-1:] or None
        error = error[0] if error else "failed"
    return TrialSummary(
        trial.trial_id,
        status,
        decode_point(dict(trial.config)),
        cv,
        int(metrics.get("epoch", 0) or 0),
        error,
        metrics,
    )
