"""Ray Tune set-up: searcher, scheduler, resources, resume, and the refit of the best trial."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator.config import Config, apply_overrides, validate_config
from orchestrator.crossval import main_metric, metric_mode
from orchestrator.defaults import with_default_space
from orchestrator.errors import AutoMLError, ConfigError
from orchestrator.folds import PreparedData, precompute_folds
from orchestrator.pipeline import PreparedRun, RefitResult, prepare_run, refit_and_test
from orchestrator.raystart import ensure_ray, stop_ray_in_background
from orchestrator.space import (
    expected_trials,
    grid_points,
    grid_size,
    to_tune_space,
    validate_space,
)
from orchestrator.trialorder import longest_first
from orchestrator.trials import (
    TrialPrinter,
    TrialSummary,
    best_epochs,
    pick_best,
    summarize,
)
from orchestrator.tunehooks import count_callbacks_by_name, kill_unready_actors_at_end

CONFIG_FILE = "automl_config.json"


class SearchInterrupted(AutoMLError):
    """The search stopped before every trial ran (Ctrl-C); it can be resumed."""


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
        }


def build_searcher(
    config: Config,
    parsed: dict,
    metric: str,
    mode: str,
    max_concurrent: int,
    grid_order: list[dict[str, Any]] | None = None,
):
    """Tune's searcher; ``grid_order``: a grid's points in the order its trials are to start
    (every point once, as ``points_to_evaluate``; see ``orchestrator.trialorder``)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    search = config.search
    if search.algorithm in ("grid", "random"):
        return BasicVariantGenerator(
            points_to_evaluate=grid_order if search.algorithm == "grid" else None,
            random_state=config.seed,
            max_concurrent=max_concurrent,
        )
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    if search.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=_startup(search))
    else:
        sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=_startup(search))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(metric=metric, mode=mode, sampler=sampler)
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def _num_samples(search, order: list | None) -> int:
    """Tune's ``num_samples``: each point of a grid's order replaces one sample."""
    if order:
        return len(order)
    return 1 if search.algorithm == "grid" else search.num_samples


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
    stop_ray_after_trials: bool = False,
) -> SearchResult:
    """Run (or resume) a search, then refit the best configuration and test it once.

    ``stop_ray_after_trials``: the caller has no use for Ray after this search (the command
    line), so Ray stops in a thread as soon as the trials are over, beside the refit and its
    logging (:func:`~orchestrator.raystart.stop_ray_in_background`).
    """
    started = time.perf_counter()
    # Ray first: its workers import what trials need while the data is prepared
    ensure_ray(address)
    run = prepare_run(config)
    config = with_default_space(config, run.prepared.family)
    search = config.search
    parsed = validate_space(config)
    metric = search.metric or main_metric(run.prepared.task)
    mode = search.mode or metric_mode(metric)
    config = apply_overrides(config, {"search.metric": metric, "search.mode": mode})
    name = name or config.tracking.experiment or time.strftime("search-%Y%m%d-%H%M%S")
    exp_dir = storage_root(storage) / name
    expected = expected_trials(parsed, search.algorithm, search.num_samples)

    prepared = trial_data(run.prepared, config)
    parent, writer, tracking_callbacks, stop = None, None, [], None
    if config.tracking.enabled:
        from orchestrator.tracking.parentstart import tracked_search

        writer, parent, tracking_callbacks, stop = tracked_search(
            config, run, name, exp_dir, resume, expected, refit
        )
    tracker = None
    try:
        with writer if writer is not None else contextlib.nullcontext():
            try:
                trials = _tune(
                    config,
                    prepared,
                    parsed,
                    name,
                    exp_dir,
                    resume,
                    address,
                    [*tracking_callbacks, *(callbacks or [])] if writer is not None else callbacks,
                    on_trial,
                    tracking=writer is not None,
                    stop=stop,
                )
            finally:  # the writer, closing, waits for the parent run: it must have begun
                if parent is not None:
                    parent.begin()
                if stop is not None:
                    stop.release()
        if stop_ray_after_trials:
            stop_ray_in_background()
        tracker = parent.result() if parent is not None else None
        if tracker is not None:
            tracker.close_open_trials({t.trial_id: (t.status, t.error) for t in trials})
            if writer.errors:
                tracker.set_tags({"automl.tracking_errors": "; ".join(writer.errors)})
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
                if tracker is not None:
                    from orchestrator.tracking import log_refit, prewarm_model_logging

                    prewarm = prewarm_model_logging()  # (begun in the search's tail, if any)
                refit_result = refit_and_test(run, best_config, best_epochs(best, best_config))
                if tracker is not None:
                    prewarm.join()  # its imports are the logging's: never two threads at once
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
        if tracker is None and parent is not None and not parent.failed:
            with contextlib.suppress(Exception):
                tracker = parent.result()
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
        writer.seconds if writer is not None else 0.0,
        writer.cpu_seconds if writer is not None else 0.0,
    )


def _classes(refit: RefitResult) -> list[str] | None:
    target = refit.predictor.target
    return [str(c) for c in target.classes_] if refit.predictor.task == "classification" else None


def _input_example(run: PreparedRun, n: int = 5) -> Any:
    X = run.prepared.dataset.X
    return X.head(n) if hasattr(X, "head") else X[:n]


@contextlib.contextmanager
def _no_default_loggers():
    """Tune adds its default loggers (CSV, JSON, TensorBoard) that are not among the callbacks
    while ``fit`` runs, unless this variable is set; it is restored afterwards."""
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


# a space over these keys changes the folds from trial to trial: the trials fit their own
FOLD_KEYS = ("data.", "split.", "seed")


def trial_data(prepared: PreparedData, config: Config) -> PreparedData:
    """What the trials get: ``prepared`` with its folds split and fitted once, here, unless
    the space varies what they depend on (the trials then fit their own). The trial workers
    so need no scikit-learn (~1.2 s of CPU each at start-up, while the driver is busy too)
    and fit no fold twice; ``AUTOML_DRIVER_FOLDS=0`` leaves the fitting to the trials."""
    if os.environ.get("AUTOML_DRIVER_FOLDS", "1") == "0":
        return prepared
    if any(key.startswith(FOLD_KEYS) for key in config.search.space):
        return prepared
    return precompute_folds(prepared, config)


def _tune(
    config, prepared, parsed, name, exp_dir, resume, address, callbacks, on_trial, tracking, stop
):
    """Submit the trials to Ray Tune (or resume them) and summarise every trial."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

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
        prepared=prepared,
        base_config=config,
        tracking=tracking,
    )
    trainable = tune.with_resources(
        trainable, {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial}
    )
    run_config = tune.RunConfig(
        name=name,
        storage_path=str(exp_dir.parent),
        failure_config=tune.FailureConfig(max_failures=search.max_failures),
        stop=stop,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        # Tune's CSV and JSON result files (its ResultGrid reads them) but not its TensorBoard
        # files: the metrics are in MLflow, and tensorboardX cost the driver ~0.6 s of CPU per
        # search (importing it as the trials start, and a write per metric per report)
        callbacks=[
            TrialPrinter(on_trial),
            *(callbacks or []),
            CSVLoggerCallback(),
            JsonLoggerCallback(),
        ],
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
        order = None
        if search.algorithm == "grid":  # the dearest trials first: none left alone at the end
            order = longest_first(grid_points(parsed), config, prepared)
        tuner = tune.Tuner(
            trainable,
            param_space=to_tune_space(parsed, search.algorithm),
            tune_config=tune.TuneConfig(
                search_alg=build_searcher(config, parsed, metric, mode, max_concurrent, order),
                scheduler=build_scheduler(config, metric, mode),
                num_samples=_num_samples(search, order),
                reuse_actors=True,
            ),
            run_config=run_config,
        )
    count_callbacks_by_name()  # else Tune imports MLflow here, before the first trial
    kill_unready_actors_at_end()  # else the end waits for actors Tune dropped before they started
    with _no_default_loggers():
        grid = tuner.fit()
    trials = [summarize(result, config.training.epochs) for result in grid]
    return sorted(trials, key=lambda t: t.index)
