"""The ``automl`` command line: help, train end to end, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--folds", "2", "--epochs", "2", "--no-tracking"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "verb", ["train", "search", "runs", "best", "predict", "serve", "export", "ui", "datasets"]
)
def test_every_verb_has_complete_help(verb):
    result = run(verb, "--help")
    assert result.exit_code == 0
    assert "Usage: main " + verb in result.output or f"Usage: automl {verb}" in result.output


def test_top_level_help_lists_the_verbs():
    result = run("--help")
    assert result.exit_code == 0
    for verb in ("train", "search", "runs", "best", "predict", "serve", "export", "ui"):
        assert verb in result.output


def test_datasets_lists_the_builtins():
    result = run("datasets")
    assert result.exit_code == 0
    for name in ("digits", "breast_cancer", "wine", "iris", "diabetes"):
        assert f"builtin:{name}" in result.output


def test_train_writes_the_documented_json(tmp_path):
    out = tmp_path / "r.json"
    result = run("train", "--data", "builtin:iris", *FAST, "--json", str(out))
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert set(payload) >= {"task", "model", "dataset", "cv", "test", "config"}
    assert payload["task"] == "classification" and payload["model"] == "fnn"
    assert payload["dataset"]["source"] == "builtin:iris"
    assert payload["cv"]["folds"] == 2
    acc = payload["cv"]["metrics"]["accuracy"]
    assert set(acc) == {"mean", "std", "per_fold"} and len(acc["per_fold"]) == 2
    assert set(payload["test"]) >= {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "log_loss",
    }
    assert "test" in result.output and "accuracy" in result.output


def test_train_regression_reports_regression_metrics(tmp_path):
    out = tmp_path / "r.json"
    result = run("train", "--data", "builtin:diabetes", *FAST, "--json", str(out))
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["task"] == "regression"
    assert set(payload["test"]) >= {"r2", "rmse", "mae", "mse"}


@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "y": ["x"] * 30}).to_csv(
        tmp_path / "single.csv", index=False
    )
    pd.DataFrame({"a": rng.normal(size=30), "y": ["high", "low"] * 15}).to_csv(
        tmp_path / "text_target.csv", index=False
    )
    pd.DataFrame(
        {
            "a": [1, np.nan, 3, np.nan, 5, np.nan],
            "b": [np.nan, 2, np.nan, 4, np.nan, 6],
            "y": [0, 1] * 3,
        }
    ).to_csv(tmp_path / "empty.csv", index=False)
    pd.DataFrame({"a": rng.normal(size=20), "y": [0] * 17 + [1] * 3}).to_csv(
        tmp_path / "rare.csv", index=False
    )
    np.savez(tmp_path / "shapes.npz", X=rng.normal(size=(10, 4, 4)), y=np.arange(7))
    (tmp_path / "data.xyz").write_text("nothing")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{d}/missing.csv", "--target", "y"], "data source not found"),
        (["--data", "{d}/single.csv", "--target", "label"], r"column.*'label'.*a, b, y"),
        (["--data", "{d}/data.xyz"], r"unsupported|format"),
        (["--data", "{d}/shapes.npz"], r"shape|10.*7|7.*10"),
        (["--data", "{d}/single.csv", "--target", "y"], "single class"),
        (["--data", "{d}/text_target.csv", "--target", "y", "--task", "regression"], "numeric"),
        (
            [
                "--data",
                "{d}/empty.csv",
                "--target",
                "y",
                "--set",
                "data.cleaning.numeric_impute=drop",
            ],
            "empty",
        ),
        (["--data", "{d}/rare.csv", "--target", "y", "--folds", "5"], r"split.folds|folds"),
        (["--data", "builtin:irsi"], r"did you mean 'iris'"),
        (
            ["--data", "builtin:iris", "--set", "model.hiden_sizes=[4]"],
            r"did you mean 'hidden_sizes'",
        ),
        (["--data", "builtin:iris", "--model", "cnn"], r"'cnn' needs image"),
        (["--data", "builtin:iris", "--config", "{d}/nope.yaml"], "config file not found"),
    ],
    ids=[
        "missing-file",
        "unknown-target",
        "unsupported-format",
        "inconsistent-shapes",
        "single-class",
        "non-numeric-regression",
        "empty-after-cleaning",
        "more-folds-than-class",
        "unknown-builtin",
        "unknown-key",
        "family-vs-data",
        "missing-config",
    ],
)
def test_bad_input_is_one_line_exit_2(bad_files, args, message):
    args = [a.format(d=bad_files) for a in args]
    fold_args = [] if "--folds" in args else ["--folds", "2"]
    result = CliRunner().invoke(
        main, ["train", *args, *fold_args, "--epochs", "1", "--no-tracking"]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(message, lines[0], re.IGNORECASE), lines[0]


def test_a_tracking_store_that_cannot_be_used_is_one_line_exit_2(tmp_path):
    (tmp_path / "afile").write_text("")  # the SQLite file's folder is a file
    uri = f"sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"
    result = CliRunner().invoke(
        main, ["train", "--data", "builtin:iris", *FAST[:4], "--tracking-uri", uri]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert uri in lines[0] and "tracking" in lines[0]


@pytest.mark.usefixtures("ray_session")
def test_search_without_a_config_runs_a_default_search(tmp_path, tiny_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s.json"
    result = run(
        "search",
        "--data",
        str(tiny_csv),
        "--target",
        "label",
        "--num-samples",
        "2",
        "--epochs",
        "2",
        "--folds",
        "2",
        "--no-tracking",
        "--storage",
        str(tmp_path / "rr"),
        "--json",
        str(out),
    )
    assert result.exit_code == 0, result.output
    import ray

    assert ray.is_initialized()  # main() in a process that goes on leaves the session's Ray up
    payload = json.loads(out.read_text())
    assert payload["algorithm"] == "random" and payload["num_trials"] == 2
    # the default space for an FNN on a table searches lr, dropout, batch size and layer sizes
    assert set(payload["trials"][0]["config"]) == {
        "training.optimizer.lr",
        "model.dropout",
        "training.batch_size",
        "model.hidden_sizes",
    }
    assert payload["best"]["test"]["accuracy"] is not None
    assert {"trial_id", "status", "config", "cv", "error"} <= set(payload["trials"][0])


FREEZE_SCRIPT = """
import atexit, gc, sys
from orchestrator import cli

atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
sys.argv = ["automl", "--version"]
cli.entry()
"""


def test_the_console_script_freezes_what_it_made_once_its_command_is_done():
    """`automl` ends right after its command: gc.freeze() spares the interpreter's final
    collections the objects torch, Ray and MLflow made, and exit handlers still run."""
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "frozen at exit: True"


def test_ui_prints_the_runs_view_of_each_experiment(tmp_path):
    """``automl ui`` names each experiment's training-runs URL before the server starts."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    from tests.e2e_helpers import ROOT, free_port

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from orchestrator.tracking import get_or_create_experiment

    experiment_id = get_or_create_experiment(MlflowClient(uri), uri, "ui-exp")
    tags = MlflowClient(uri).get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    port = free_port()
    cmd = [sys.executable, "-m", "orchestrator.cli", "ui", "--tracking-uri", uri]
    cmd += ["--port", str(port), "--experiment", "ui-exp"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert lines[1].strip() == f"ui-exp: http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
    missing = subprocess.run(
        [*cmd[:-1], "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "no experiment named 'nope'" in missing.stderr
