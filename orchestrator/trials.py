"""Trial rows of a search: Ray Tune results summarised as config, CV metrics, status and error,
and the choice of the best trial. Read from Tune's result objects by attribute: no Ray import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            # exactly fold<i>_<name>: "fold1_log_loss" is log_loss's, not loss's
            own = re.compile(rf"fold\d+_{re.escape(name)}")
            per_fold = [metrics[k] for k in sorted(metrics, key=_fold_order) if own.fullmatch(k)]
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


# --------------------------------------------------------------------------- two objectives
def objective_key(metric: str) -> str:
    """Where a trial's final result holds an objective: ``cv_<name>_mean`` for a validation
    metric, the key itself for a cost (``predict_ms``, ``n_params``)."""
    return f"cv_{metric.removeprefix('val_')}_mean" if metric.startswith("val_") else metric


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere (larger is
    better: the scores are signed)."""
    pairs = list(zip(a, b, strict=True))
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def objective_values(trial: TrialSummary, metrics: list[str]) -> list[float] | None:
    """A finished trial's value of each objective; None where one is missing or not finite."""
    if trial.status == "ERROR":
        return None
    values = []
    for metric in metrics:
        name = metric.removeprefix("val_")
        value = trial.cv[name]["mean"] if name in trial.cv else trial.metrics.get(metric)
        if not isinstance(value, int | float) or value != value:
            return None
        values.append(float(value))
    return values


def pareto_front(
    trials: list[TrialSummary], metrics: list[str], modes: list[str]
) -> list[TrialSummary]:
    """The trials no other trial beats on every objective, in trial order (ties all kept)."""
    signs = [1.0 if m == "max" else -1.0 for m in modes]
    scored = []
    for t in trials:
        values = objective_values(t, metrics)
        if values is not None:
            scored.append((t, tuple(s * v for s, v in zip(signs, values, strict=True))))
    return [t for t, a in scored if not any(dominates(b, a) for _, b in scored)]


def pick_from_front(
    front: list[TrialSummary], metrics: list[str], modes: list[str], pick: str, tolerance: float
) -> TrialSummary | None:
    """The trial ``search.pick`` takes from a Pareto front: ``first`` or ``second``, the best by
    that objective; ``tradeoff``, the best second objective among the trials within
    ``tolerance`` of the best first objective."""
    if not front:
        return None
    signs = [1.0 if m == "max" else -1.0 for m in modes]

    def signed(t: TrialSummary, i: int) -> float:
        return signs[i] * (objective_values(t, metrics) or [0.0, 0.0])[i]

    if pick in ("first", "second"):
        i = 0 if pick == "first" else 1
        return max(front, key=lambda t: (signed(t, i), signed(t, 1 - i)))
    best_first = max(signed(t, 0) for t in front)
    near = [t for t in front if signed(t, 0) >= best_first - tolerance]
    return max(near, key=lambda t: (signed(t, 1), signed(t, 0)))
