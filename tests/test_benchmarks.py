"""The benchmark suite: a quick B3 smoke run, the CPU sampler, and P1's set-up and report."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_quick_b3_writes_results(tmp_path):
    from benchmarks.run import main

    out = tmp_path / "results"
    main(["--quick", "--only", "B3", "--no-profile", "--out", str(out)])

    doc = json.loads((out / "latest.json").read_text())
    assert {"machine", "benchmarks", "goals", "mode", "total_s"} <= set(doc)
    assert doc["mode"] == "quick"
    assert {"cpu_model", "cores", "ram_gib", "versions"} <= set(doc["machine"])
    assert {"torch", "ray", "mlflow", "skorch"} <= set(doc["machine"]["versions"])
    b3 = doc["benchmarks"]["B3"]
    assert "error" not in b3, b3.get("error")
    assert {
        "ours_tracking_on_trials_per_s",
        "ours_tracking_on_steady_trials_per_s",
        "raw_tune_trials_per_s",
        "digits_mlflow_s_per_trial",
        "digits_mlflow_pct_of_trial",
        "ours_tracking_all_figures_steady_trials_per_s",
        "digits_mlflow_all_figures_pct_of_trial",
        "digits_mlflow_cpu_pct_of_trial",
        "digits_mlflow_busy_pct_of_trial",
        "digits_mlflow_all_figures_cpu_pct_of_trial",
    } <= set(b3["figures"])
    # --quick runs the default-figures contenders only (each a child process with its Ray)
    assert b3["figures"]["ours_tracking_on_trials_per_s"] > 0
    assert b3["figures"]["ours_tracking_all_figures_steady_trials_per_s"] is None
    # the writer's CPU time is part of its busy time, and a real share of each trial's time
    cpu, busy = (
        b3["figures"]["digits_mlflow_cpu_s_per_trial"],
        b3["figures"]["digits_mlflow_busy_s_per_trial"],
    )
    assert 0 < cpu <= busy * 1.05
    # (quick trials last ~0.2 s, while the search's one set of matplotlib figures and
    # matplotlib's import cost ~0.7 s of the writer's CPU: the share is not bounded here)
    assert b3["figures"]["digits_mlflow_cpu_pct_of_trial"] > 0
    assert len(b3["reps"]) == 1
    # trials/s and MLflow share (default figures), trials/s with figures for every trial
    assert [g["benchmark"] for g in doc["goals"]] == ["B3"] * 3
    assert all({"label", "value", "target", "passed"} <= set(g) for g in doc["goals"])
    assert "B3" in (out / "latest.md").read_text()


def test_cpu_sampler_counts_every_process_of_the_tree_once(tmp_path):
    """A parent that waits while two children burn ~0.6 s of CPU each: the tree's CPU holds both
    children and hardly any of the parent's, and the fast exit still writes the result."""
    import sys

    from benchmarks.common import run_command

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    parent = (
        "import subprocess, sys\n"
        f"procs = [subprocess.Popen([sys.executable, '-c', {burn!r}]) for _ in range(2)]\n"
        "for p in procs: p.wait()\n"
    )
    out = run_command([sys.executable, "-c", parent], tmp_path, "burn", cpu=True)

    cpu = out["cpu"]
    assert cpu["processes"] == 3
    parent_s = cpu["tree_cpu_s_by_process"]["driver"]
    assert parent_s < 0.5
    # both children's 0.6 s (less up to one 0.1 s sampling interval each), not counted again as
    # the parent's reaped children (that would be ~2.6 s)
    assert 1.0 <= cpu["tree_cpu_s"] - parent_s <= 1.7
    assert 0 < cpu["tree_utilisation"] <= 1.0
    assert cpu["machine_busy_cpu_s"] >= 1.0


def test_p1_is_registered_first_and_selectable():
    from benchmarks.run import BENCHMARKS, parse_args

    assert next(iter(BENCHMARKS)) == "P1"
    assert parse_args(["--out", "x"]).only[0] == "P1"
    assert parse_args(["--quick", "--only", "p1"]).only == ["P1"]


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
def test_p1_config_is_a_valid_grid_search_of_the_cli(tmp_path, quick):
    """The YAML that P1 gives ``automl search`` validates, and the hand-written contenders get
    the same grid, epochs and data on their command line."""
    from benchmarks.common import BenchContext
    from benchmarks.p1_loop import parse_args
    from benchmarks.p1_search import automl_config, handwritten_command, sizes
    from orchestrator.config import validate_config
    from orchestrator.space import expected_trials, validate_space

    ctx = BenchContext(quick=quick, reps=None, workdir=tmp_path, profile=False)
    # stand-ins for the table and the migrated MLflow store, so that no child process runs
    ctx.stores.update(p1=tmp_path / "table.csv", mlflow=tmp_path / "template.db")
    ctx.stores["mlflow"].write_bytes(b"")
    config = validate_config(automl_config(ctx, ctx.stores["p1"], "sqlite:///m.db"))
    size = sizes(ctx)
    assert config.search.algorithm == "grid" and config.search.scheduler == "fifo"
    assert not config.training.early_stopping.enabled and config.training.grad_clip is None
    assert (config.split.folds, config.training.batch_size) == (5, 128)
    assert expected_trials(validate_space(config), "grid", 1) == (4 if quick else 16)

    for who in ("raytune", "optuna"):
        cmd = handwritten_command(ctx, who, tmp_path)
        assert cmd[2] == f"benchmarks.p1_{who}"
        args = parse_args("p1", cmd[3:])
        assert (args.lr, args.hidden, args.epochs) == (size["lrs"], size["hidden"], size["epochs"])
        assert args.data == str(ctx.stores["p1"])
        assert args.tracking_uri.startswith("sqlite:///")


def test_p1_figures_goals_and_report():
    from benchmarks.p1_loop import read_result
    from benchmarks.p1_search import goals, summarize
    from benchmarks.report import markdown

    def contender(wall, acc):
        return {"process_wall_s": wall, "best_cv_accuracy": acc, "cpu": {"tree_cpu_s": wall}}

    row = {
        "automl": {**contender(30.0, 0.801), "search_wall_s": 25.0},
        "raytune": contender(100.0, 0.80),
        "optuna": contender(60.0, 0.805),
        "raytune_lean": contender(50.0, 0.9),  # a reference: in no goal
        "raytune_ratio": 0.3,
        "optuna_ratio": 0.5,
        "raytune_lean_ratio": 0.6,
    }
    figures = summarize([row])
    assert figures["accuracy_difference"] == pytest.approx(0.801 - 0.805)
    assert [g["passed"] for g in goals(figures)] == [True, False, False]
    assert figures["wall_ratio_vs_raytune_lean"] == 0.6

    log = 'Trial 3 finished\n{"best_cv_accuracy": 0.8, "trials": 16}\n(raylet) bye\n'
    assert read_result(log) == {"best_cv_accuracy": 0.8, "trials": 16}
    with pytest.raises(ValueError, match="best_cv_accuracy"):
        read_result("no result here")

    bench = {"title": "P1 hand-written", "figures": figures, "goals": goals(figures)}
    doc = {
        "mode": "quick",
        "reps": None,
        "started": "now",
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "ram_gib": 1.0,
            "os": "os",
            "python": "3",
            "versions": {},
            "load_average_at_start": None,
        },
        "benchmarks": {"P1": bench},
        "goals": [{"benchmark": "P1", **g} for g in bench["goals"]],
    }
    text = markdown(doc)
    assert "## P1 hand-written" in text
    assert "| P1 wall time vs hand-written Optuna (ratio) | 0.5x | <= 0.35x | FAIL |" in text


def test_p1_hand_written_cross_validation_scores_a_tiny_table():
    import numpy as np

    from benchmarks.p1_loop import cv_accuracy

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    assert 0.8 <= cv_accuracy(X, y, lr=3e-2, hidden_sizes=[8], epochs=20) <= 1.0
