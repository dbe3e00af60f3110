"""The searcher of a search: what Ray Tune asks for each new trial's point.

- grid: :class:`PointSearcher` hands out the grid's points, each once, in the order given
  (dearest first: ``orchestrator.trialorder``); a conditional grid's points are each family's own.
- random without families: Tune's ``BasicVariantGenerator`` over ``param_space``.
- random over families, and bayes: Ray Tune's ``OptunaSearch`` with Optuna's define-by-run
  (``orchestrator.space.SearchSpace``), so a trial is suggested only its active parameters;
  random with Optuna's ``RandomSampler``, bayes with TPE (multivariate, grouped by the
  parameters that occur together: conditional spaces) or a Gaussian process. Two objectives
  make the study multi-objective (TPE's multi-objective mode).
- warm start: an earlier search's finished trials are added to the Optuna study, completed,
  before the first suggestion (:func:`warm_study`); they are not run again.

Ray Tune's and Optuna's public APIs only.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from orchestrator.config import Config
from orchestrator.space import SearchSpace

STUDY_NAME = "automl"


@dataclass
class Objectives:
    """What the search optimises: one (metric, mode), or two (a Pareto front)."""

    metrics: list[str]
    modes: list[str]

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    def tune_metric(self) -> str | list[str]:
        return self.metrics if self.multi else self.metrics[0]

    def tune_mode(self) -> str | list[str]:
        return self.modes if self.multi else self.modes[0]


@dataclass
class WarmTrial:
    """A finished trial of an earlier search: its parameters as :class:`SearchSpace` names
    and encodes them, and its objective values."""

    params: dict[str, Any]
    values: list[float] = field(default_factory=list)


class PointSearcher(Searcher):
    """Each of ``points`` once, in order; then no more trials."""

    def __init__(self, points: list[dict[str, Any]]) -> None:
        super().__init__()
        self.points = [dict(p) for p in points]
        self.given = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.given >= len(self.points):
            return Searcher.FINISHED
        self.given += 1
        return dict(self.points[self.given - 1])

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        """Nothing to learn: the points are fixed."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump({"points": self.points, "given": self.given}, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            state = pickle.load(fh)
        self.points, self.given = state["points"], state["given"]


def build_searcher(
    config: Config,
    space: SearchSpace,
    objectives: Objectives,
    max_concurrent: int,
    grid_order: list[dict[str, Any]] | None = None,
    warm: list[WarmTrial] | None = None,
):
    """Tune's searcher for ``config.search.algorithm`` (see the module); ``grid_order``: a
    grid's points in the order their trials start; ``warm``: finished trials to learn from."""
    algorithm = config.search.algorithm
    if algorithm == "grid":
        return ConcurrencyLimiter(PointSearcher(grid_order or []), max_concurrent=max_concurrent)
    if algorithm == "random" and not space.by_family:
        return BasicVariantGenerator(random_state=config.seed, max_concurrent=max_concurrent)
    from ray.tune.search.optuna import OptunaSearch

    storage = warm_study(space, objectives, warm or [])
    searcher = OptunaSearch(
        space=space,
        metric=objectives.tune_metric(),
        mode=objectives.tune_mode(),
        sampler=build_sampler(config, bool(space.by_family), len(warm or [])),
        storage=storage,
        study_name=STUDY_NAME,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def build_sampler(config: Config, conditional: bool, warm: int):
    """Optuna's sampler: random, TPE or GP; ``warm`` finished trials count towards the
    random start-up trials of a model-based sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = config.search
    if search.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    startup = max(0, startup_trials(search) - warm)
    if search.sampler == "gp":
        return optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=startup)
    with warnings.catch_warnings():  # multivariate and group are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=config.seed,
            n_startup_trials=startup,
            multivariate=conditional,
            group=conditional,
        )


def startup_trials(search) -> int:
    """Random start-up trials before the model-based sampler takes over."""
    return max(2, min(10, search.num_samples // 3))


def warm_study(space: SearchSpace, objectives: Objectives, warm: list[WarmTrial]):
    """An in-memory Optuna storage whose study holds ``warm`` as completed trials (None
    without any); a trial that is not a point of ``space`` is left out."""
    if not warm:
        return None
    import optuna

    storage = optuna.storages.InMemoryStorage()
    directions = ["maximize" if m == "max" else "minimize" for m in objectives.modes]
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=directions)
    for trial in warm:
        fixed = optuna.trial.FixedTrial(trial.params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a value out of range is refused just below
                space(fixed)  # records each active parameter's distribution
            study.add_trial(
                optuna.trial.create_trial(
                    params=fixed.params, distributions=fixed.distributions, values=trial.values
                )
            )
        except ValueError:
            continue
    return storage
