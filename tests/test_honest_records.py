"""What MLflow shows is what happened (issue 25, honest records): each trial run spans its
trial, the parent run spans the search, and every ``per_fold`` list and ``foldK_*`` metric
holds one value per fold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from mlflow import MlflowClient

from tests.e2e_helpers import ROOT, clean_env
from tests.test_tracking_fixtures import store_template  # noqa: F401  (a fixture)

FOLDS = 3


@pytest.fixture(scope="module")
def tracked_search(tmp_path_factory, store_template):  # noqa: F811
    """A grid search of short trials through the command line, as a user runs it (a fresh
    process imports MLflow while the first trials run: runs created late once looked short):
    (its JSON, its runs, each trial's own time from Tune's result files)."""
    folder = tmp_path_factory.mktemp("honest")
    db = folder / "store.db"
    shutil.copyfile(store_template, db)
    space = {"training.optimizer.lr": {"grid": [1e-3, 3e-3, 1e-2, 3e-2]}}
    config = {
        "data": {"source": "builtin:iris"},
        "split": {"folds": FOLDS},
        "model": {"hidden_sizes": [16]},
        "training": {"epochs": 8, "early_stopping": {"enabled": False}},
        "search": {"algorithm": "grid", "space": space},
        "tracking": {"tracking_uri": f"sqlite:///{db}", "trial_figures": "none"},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "orchestrator.cli", "search", "--config", "c.yaml"),
            *("--experiment", "honest", "--storage", "rr", "--json", "out.json"),
        ],
        cwd=folder,
        env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((folder / "out.json").read_text())
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("honest").experiment_id])
    trained = {}
    for result in (folder / "rr" / "honest").glob("*/result.json"):
        last = json.loads(result.read_text().strip().splitlines()[-1])
        trained[last["trial_id"]] = last["time_total_s"]
    return payload, runs, trained


def test_each_run_spans_what_it_records(tracked_search):
    payload, runs, trained = tracked_search
    by_trial = {r.data.tags.get("automl.trial_id"): r for r in runs}
    assert sorted(trained) == sorted(t["trial_id"] for t in payload["trials"])
    for trial_id, own in trained.items():  # the trial's own clock, from Tune's result file
        run = by_trial[trial_id]
        seconds = (run.info.end_time - run.info.start_time) / 1000
        assert own * 0.95 <= seconds <= own + 10, (trial_id, seconds, own)
    parent = next(r for r in runs if r.data.tags.get("automl.role") == "search")
    parent_s = (parent.info.end_time - parent.info.start_time) / 1000
    wall = payload["wall_s"]
    assert wall * 0.9 <= parent_s <= wall + 5, (parent_s, wall)
    first_trial = min(by_trial[t].info.start_time for t in trained)
    refit = next(r for r in runs if r.data.tags.get("automl.role") == "refit")
    assert parent.info.start_time <= first_trial  # from before the first trial ...
    assert parent.info.end_time >= refit.info.end_time  # ... to after the final model


def test_per_fold_lists_hold_one_value_per_fold(tracked_search):
    payload, runs, _ = tracked_search
    for trial in payload["trials"]:
        assert trial["cv"], trial
        for name, stats in trial["cv"].items():
            assert len(stats["per_fold"]) == FOLDS, (name, stats["per_fold"])
    for run in runs:
        if run.data.tags.get("automl.role") != "trial":
            continue
        folds = [k for k in run.data.metrics if k.startswith("fold")]
        names = {k.split("_", 1)[1] for k in folds}
        assert "loss" in names and "log_loss" in names  # the pair that once got mixed up
        for name in names:
            own = [k for k in folds if k.split("_", 1)[1] == name]
            assert sorted(own) == [f"fold{i}_{name}" for i in range(1, FOLDS + 1)], own
