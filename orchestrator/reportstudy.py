"""The Optuna study of a search's trials, rebuilt from their MLflow runs for the report
(``orchestrator.searchreport``): each parameter's distribution inferred from its logged values,
each trial frozen with its state and value(s). No MLflow here."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from orchestrator.tracking.reportdata import ReportData, TrialRecord

DONE = ("COMPLETED", "FINISHED")  # a trial run's automl.status once it has its value


def build_study(data: ReportData, objectives: bool = False) -> optuna.Study:
    """An in-memory Optuna study of the trials, numbered by end time, on the search metric (or,
    with ``objectives``, the two of a two-objective search): a finished trial with its value(s)
    is COMPLETE, one the scheduler stopped PRUNED, a running one RUNNING, else FAIL."""
    import optuna

    modes = [mode for _, mode in data.objectives] if objectives else [data.mode]
    directions = ["maximize" if mode == "max" else "minimize" for mode in modes]
    study = optuna.create_study(directions=directions, study_name=data.search)
    distributions = infer_distributions(data.trials, data.space)
    for trial in data.trials:
        study.add_trial(_frozen_trial(trial, distributions, objectives))
    return study


def infer_distributions(trials: list[TrialRecord], space: dict[str, Any]) -> dict[str, Any]:
    """Each parameter's distribution from its logged values: numbers an Int/FloatDistribution
    over the observed range (log where the space says loguniform), anything else (JSON lists
    included) a CategoricalDistribution of the observed texts."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    observed: dict[str, list[str]] = {}
    for trial in trials:
        for key, value in trial.params.items():
            observed.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for key, values in observed.items():
        numbers = [as_number(v) for v in values]
        spec = space.get(key)
        log = isinstance(spec, dict) and "loguniform" in spec
        if any(n is None for n in numbers):
            out[key] = CategoricalDistribution(list(dict.fromkeys(values)))
        elif all(isinstance(n, int) for n in numbers):
            low, high = min(numbers), max(numbers)
            out[key] = IntDistribution(low, high, log=log and low >= 1)
        else:
            low, high = float(min(numbers)), float(max(numbers))
            out[key] = FloatDistribution(low, high, log=log and low > 0)
    return out


def as_number(text: str) -> int | float | None:
    """A logged parameter's text as a finite number; None if it is not one."""
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            value = kind(text)
            return value if math.isfinite(value) else None
    return None


def _frozen_trial(trial: TrialRecord, distributions: dict[str, Any], multi: bool):
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState

    values = trial.objectives if multi else [trial.value]
    done = trial.status in DONE and all(v is not None for v in values)
    other = {"STOPPED": TrialState.PRUNED, "RUNNING": TrialState.RUNNING}
    params = {}
    for key, text in trial.params.items():
        dist = distributions[key]
        kind = str if isinstance(dist, CategoricalDistribution) else float
        params[key] = int(text) if isinstance(dist, IntDistribution) else kind(text)
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE if done else other.get(trial.status, TrialState.FAIL),
        values=values if done else None,
        params=params,
        distributions={k: distributions[k] for k in params},
        user_attrs={"run": trial.name, "run_id": trial.run_id},
    )


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Without Optuna's log line on each study ("A new study created in memory")."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
