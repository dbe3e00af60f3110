"""An interrupted search resumes without re-running finished trials, keeps its Bayesian
searcher (ray#30861: a restore that silently fell back to random sampling) and re-attaches to its
MLflow runs."""

from __future__ import annotations

import glob
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.slow

CONFIG = {
    "seed": 5,
    "data": {"source": "builtin:iris"},
    "split": {"folds": 2},
    "model": {"hidden_sizes": [16]},
    "training": {"epochs": 3, "early_stopping": {"enabled": False}},
    "search": {
        "algorithm": "bayes",
        "num_samples": 6,
        "max_concurrent": 1,
        "space": {
            "training.optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]},
            "model.dropout": {"uniform": [0.0, 0.5]},
        },
    },
}


def automl(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *args]


def test_interrupted_bayes_search_resumes(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        automl("search", "--config", "c.yaml", "--experiment", "res", "--storage", "rr"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    finished_before: list[str] = []
    deadline = time.time() + 240
    try:
        for line in proc.stdout:
            match = re.match(r"trial (\S+) TERMINATED", line)
            if match:
                finished_before.append(match.group(1))
            if len(finished_before) >= 2 or time.time() > deadline:
                break
        proc.send_signal(signal.SIGINT)  # like Ctrl-C: Ray Tune saves its state and stops
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(finished_before) >= 2

    out = subprocess.run(
        automl("search", "--resume", "res", "--storage", "rr", "--json", "res.json"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    import json

    result = json.loads((tmp_path / "res.json").read_text())
    trials = {t["trial_id"]: t for t in result["trials"]}
    assert len(trials) == 6
    # the trials finished before the interrupt were not run again: they still hold 3 epochs
    for trial_id in finished_before:
        assert trials[trial_id]["status"] == "TERMINATED"
    progress = glob.glob(str(tmp_path / "rr" / "res" / "*" / "result.json"))
    for path in progress:
        epochs = [json.loads(line)["epoch"] for line in open(path) if line.strip()]
        assert epochs == sorted(set(epochs)), f"a trial was re-run: {path}"

    # the resumed searcher is still Optuna's TPE and was told every finished trial's result
    state_file = sorted(glob.glob(str(tmp_path / "rr" / "res" / "searcher-state-*.pkl")))[-1]
    state = pickle.loads(open(state_file, "rb").read())
    assert type(state["_sampler"]).__name__ == "TPESampler"
    completed = [t for t in state["_ot_study"].trials if t.state.name == "COMPLETE"]
    assert len(completed) == 6

    # MLflow: one parent, one child run per trial, no duplicates after the resume
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("res")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.role") == "search"]
    children = [r for r in runs if r.data.tags.get("automl.trial_id")]
    assert len(parents) == 1
    trial_ids = [r.data.tags["automl.trial_id"] for r in children]
    assert sorted(trial_ids) == sorted(trials)
    assert all(r.info.status == "FINISHED" for r in children)
