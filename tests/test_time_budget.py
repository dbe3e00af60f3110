"""``search.time_budget_s`` (``--time-budget``): the search stops starting trials when the
budget is spent, stops the running ones at its end with their last results kept, and the final
model follows. On a real local Ray."""

from __future__ import annotations

import time

import pytest

from orchestrator.config import parse_duration
from orchestrator.search import run_search
from tests.conftest import tiny_config


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("45", 45)]
)
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds
    assert tiny_config(**{"search.time_budget_s": text}).search.time_budget_s == seconds


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_60_s_budget_ends_a_5_minute_search_in_time(tmp_path):
    # 40 trials of ~13 s (3000 epochs of 3 tiny iris folds), two at a time: about 5 minutes;
    # the final model is the fold ensemble (no refit to wait for)
    config = tiny_config(
        **{
            "training.epochs": 3000,
            "search.num_samples": 40,
            "split.folds": 3,
            "search.time_budget_s": "60s",
        },
        **{"search.space": {"training.optimizer.lr": {"loguniform": [1e-3, 1e-2]}}},
    )
    started = time.perf_counter()
    result = run_search(config, name="budget", storage=str(tmp_path), refit=True)
    wall = time.perf_counter() - started
    assert wall < 80
    finished = [t for t in result.trials if t.status == "TERMINATED"]
    assert finished and len(result.trials) < 40
    assert result.budget.spent and 59 <= result.budget.used_s < 75
    assert result.refit is not None and result.refit.test_metrics["accuracy"] is not None
    payload = result.to_json()["time_budget"]
    assert payload["seconds"] == 60 and payload["spent"] is True
    # a trial the budget cut short kept its last result
    for trial in result.trials:
        if trial.status == "STOPPED" and trial.epochs:
            assert trial.cv["accuracy"]["mean"] is not None
