"""Ray Tune set-up of a search: searcher, scheduler, resources, resume, and ``Tuner.fit``.

Everything here is Ray Tune's public API (``tune.Tuner``, ``tune.TuneConfig``,
``tune.RunConfig``, ``tune.with_parameters``); the search's flow is ``orchestrator.search``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ray import tune

from orchestrator.config import Config
from orchestrator.errors import ConfigError
from orchestrator.folds import PreparedData
from orchestrator.ray_adapter import (
    FoldModels,
    TrialEvents,
    TrialListener,
    TrialPrinter,
    cluster_cpus,
)
from orchestrator.searchers import Objectives, WarmTrial, build_searcher
from orchestrator.space import SearchSpace, to_tune_space
from orchestrator.trialorder import longest_first
from orchestrator.trials import TrialSummary, summarize

CONFIG_FILE = "automl_config.json"
MAX_GRID_POINTS = 10_000


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


# Tune's documented variables while ``fit`` runs: no default loggers (CSV, JSON, TensorBoard)
# besides the callbacks; the experiment's state saved at least every second (Tune's "auto" saves
# it every 10 s or more), so that a driver killed outright loses at most a second of it: a trial
# that finished more than a second before is not run again by --resume. A value the user set
# is kept.
TUNE_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_GLOBAL_CHECKPOINT_S": "1"}


@contextlib.contextmanager
def _tune_env() -> Iterator[None]:
    """:data:`TUNE_ENV` set while the block runs, restored afterwards."""
    before = {key: os.environ.get(key) for key in TUNE_ENV}
    for key, value in TUNE_ENV.items():
        if key == "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" or before[key] is None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_tuner(
    config: Config,
    prepared: PreparedData,
    space: SearchSpace,
    name: str,
    exp_dir: Path,
    resume: bool,
    listener: TrialListener | None,
    callbacks: list | None,
    on_trial: Callable[[TrialSummary], None] | None,
    warm: list[WarmTrial] | None = None,
) -> list[TrialSummary]:
    """Submit the trials to Ray Tune (or resume them) and summarise every trial, in creation
    order. ``listener`` gets every trial's events as plain values (the MLflow writer)."""
    from orchestrator.trial import run_trial

    search = config.search
    max_concurrent = search.max_concurrent or max(1, int(cluster_cpus() // search.cpus_per_trial))
    # with a model-based searcher Ray keeps one pending trial unless told otherwise
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max_concurrent)
    trainable = tune.with_parameters(
        run_trial, prepared=prepared, base_config=config, tracking=listener is not None
    )
    trainable = tune.with_resources(
        trainable, {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial}
    )
    events = TrialEvents(listener) if listener is not None else None
    run_config = _run_config(config, name, exp_dir, events, callbacks, on_trial)
    # entered before a restore: Tuner.restore unpickles the run config's callbacks, and the
    # events callback's pickle names the one running here
    with events if events is not None else contextlib.nullcontext(), _tune_env():
        if resume:
            tuner = tune.Tuner.restore(
                str(exp_dir),
                trainable,
                resume_unfinished=True,
                resume_errored=search.max_failures > 0,
            )
        else:
            tuner = _new_tuner(
                config, prepared, space, exp_dir, trainable, run_config, max_concurrent, warm
            )
        grid = tuner.fit()
    trials = [summarize(result, config.training.epochs) for result in grid]
    return sorted(trials, key=lambda t: t.index)


def fold_models_dir(exp_dir: Path) -> Path:
    """Where a search keeps its best trial's fold models (``search.refit: folds``)."""
    return exp_dir / "fold_models"


def _run_config(config, name, exp_dir, events, callbacks, on_trial) -> tune.RunConfig:
    """Where Tune keeps the search, its retries and checkpoints, and the driver's callbacks:
    the events callback first, so that Tune's own loggers never see the tracking payload; Tune's
    CSV and JSON result files (its ResultGrid reads them) but not its TensorBoard files (the
    metrics are in MLflow)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return tune.RunConfig(
        name=name,
        storage_path=str(exp_dir.parent),
        failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        callbacks=[
            *([events] if events is not None else []),
            FoldModels(fold_models_dir(exp_dir), objectives(config)),
            TrialPrinter(on_trial),
            *(callbacks or []),
            CSVLoggerCallback(),
            JsonLoggerCallback(),
        ],
        verbose=0,
    )


def objectives(config: Config) -> Objectives:
    """The search's objectives: ``search.metrics`` (two), else ``search.metric``; their modes
    resolved (``prepare_search`` fills them in)."""
    search = config.search
    if search.metrics:
        return Objectives(list(search.metrics), list(search.modes))
    return Objectives([search.metric or ""], [search.mode or "max"])


def _new_tuner(config, prepared, space, exp_dir, trainable, run_config, max_concurrent, warm):
    search = config.search
    if search.algorithm == "grid" and space.grid_size() > MAX_GRID_POINTS:
        raise ConfigError(
            f"the grid has {space.grid_size()} points; at most {MAX_GRID_POINTS} allowed"
        )
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / CONFIG_FILE).write_text(json.dumps(config.model_dump(), indent=2))
    order = None
    if search.algorithm == "grid":  # the dearest trials first: none left alone at the end
        points = space.grid_points()
        order = longest_first(points, config, prepared) or points
    flat_random = search.algorithm == "random" and not space.by_family
    searcher = build_searcher(config, space, objectives(config), max_concurrent, order, warm)
    return tune.Tuner(
        trainable,
        # Optuna's define-by-run and the grid's points need none: only Tune's random search
        param_space=to_tune_space(space.parsed, "random") if flat_random else {},
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=build_scheduler(config, search.metric, search.mode),
            num_samples=len(order) if order is not None else search.num_samples,
            reuse_actors=True,
            # no trial starts once it is spent; running ones stop with their last result kept
            time_budget_s=search.time_budget_s,
        ),
        run_config=run_config,
    )
