"""What a search returns: its trials, the best (or, with two objectives, the Pareto front and
the trial picked from it), the final model's test metrics and the time budget; ``to_json`` is
the command line's ``--json`` (keys are only ever added)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.config import Config
from orchestrator.pipeline import PreparedRun, RefitResult
from orchestrator.trials import TrialSummary, objective_values


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
    # two objectives: [(metric, mode), ...] and the trials on their Pareto front
    objectives: list[tuple[str, str]] = field(default_factory=list)
    pareto: list[TrialSummary] | None = None
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
            "objectives": [{"metric": m, "mode": d} for m, d in self.objectives],
            "pareto_front": self._front(),
        }

    def _front(self) -> list[dict[str, Any]] | None:
        """The Pareto front's trials and their objective values (None with one objective)."""
        if self.pareto is None:
            return None
        metrics = [m for m, _ in self.objectives]
        return [
            {
                "trial_id": t.trial_id,
                "config": t.config,
                "values": dict(zip(metrics, objective_values(t, metrics) or [], strict=False)),
                "picked": self.best is not None and t.trial_id == self.best.trial_id,
            }
            for t in self.pareto
        ]
