"""Trial rows of a search: Ray Tune results summarised as config, CV metrics, status and error.

Also the driver callback that reports each finished trial, and the choice of the best trial.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator.config import Config
from orchestrator.space import decode_point


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
        status, error = "ERROR", error_line(result.error)
    elif "refit_epochs" not in metrics and epochs < max_epochs:
        status, error = "STOPPED", None
    else:
        status, error = "TERMINATED", None
    return TrialSummary(trial_id, status, config, cv, epochs, error, metrics, index)


def _fold_order(key: str) -> tuple[int, str]:
    digits = "".join(c for c in key.split("_")[0] if c.isdigit())
    return (int(digits) if digits else 0, key)


def error_line(error: BaseException) -> str:
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


# The stop conditions of the searches running in this process, by experiment folder: what the
# stopper of a resumed search, which Tune restores from that folder without its condition, asks.
_STOP_CONDITIONS: dict[str, Callable[[], bool]] = {}


class StopIf(tune.Stopper):
    """A Tune stopper that ends the whole search once ``condition()`` holds (the search's
    MLflow parent run could not be started: ``tracking.parentstart``).

    Tune pickles the run config into the experiment folder ``key`` and a resumed search gets
    the stopper back from there, without its condition: it then asks the condition that the
    resumed search registered under the same folder (until :meth:`release`)."""

    def __init__(self, condition: Callable[[], bool] | None, key: str | None = None) -> None:
        self.condition, self.key = condition, key
        if condition is not None and key is not None:
            _STOP_CONDITIONS[key] = condition

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        condition = self.condition or _STOP_CONDITIONS.get(self.key or "")
        return condition is not None and bool(condition())

    def release(self) -> None:
        """Forget the condition registered under ``key`` (the search is over)."""
        if self.key is not None and _STOP_CONDITIONS.get(self.key) is self.condition:
            del _STOP_CONDITIONS[self.key]

    def __reduce__(self):
        return (StopIf, (None, self.key))


class OnFirstReport(tune.Callback):
    """A Tune callback on the driver that calls ``action`` once: at the first report, end or
    failure of any trial (Tune has then started the first trials, and its loop mostly waits),
    or ``within_s`` after Tune's loop began if none came by then (a slow first epoch must not
    keep the search's parent run out of the MLflow UI for long), or at the end of the search."""

    def __init__(self, action: Callable[[], Any], within_s: float = 5.0) -> None:
        self.action, self.within_s = action, within_s
        self.done = False
        self._first_step: float | None = None

    def on_step_begin(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        if self._first_step is None:
            self._first_step = now
        if now - self._first_step >= self.within_s:
            self._fire()

    def _fire(self, *args, **info) -> None:
        if not self.done:
            self.done = True
            self.action()

    on_trial_result = on_trial_complete = on_trial_error = _fire

    def on_experiment_end(self, trials, **info) -> None:
        self._fire()

    def __reduce__(self):
        # Tune pickles its callbacks into the experiment folder; a resumed search gets its own
        return (OnFirstReport, (_nothing,))


def _nothing() -> None:
    return None


class WhenTrialsRunOut(tune.Callback):
    """A Tune callback on the driver that calls ``action`` once, in the search's tail: every
    one of the ``expected`` trials has been created, none waits to start, and fewer run than
    ever ran at once, so a worker (and a core) is idle until the search ends."""

    def __init__(self, expected: int, action: Callable[[], Any]) -> None:
        self.expected, self.action = expected, action
        self.peak = 0
        self.done = False

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        # (Tune calls this before it marks the trial itself RUNNING)
        running = 1 + sum(t.status == "RUNNING" for t in trials if t is not trial)
        self.peak = max(self.peak, running)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._check(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._check(trials, trial)

    def _check(self, trials, ended) -> None:
        if self.done or len(trials) < self.expected:
            return
        others = [t for t in trials if t is not ended]
        if any(t.status == "PENDING" for t in others):
            return
        if sum(t.status == "RUNNING" for t in others) < self.peak:
            self.done = True
            self.action()


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
