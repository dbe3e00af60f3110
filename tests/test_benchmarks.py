"""Smoke test of the benchmark suite: quick B3 only, and the shape of latest.json."""

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
    assert b3["figures"]["raw_tune_trials_per_s"] > 0
    # the writer's CPU time is part of its busy time, and a real share of each trial's time
    cpu, busy = (
        b3["figures"]["digits_mlflow_cpu_s_per_trial"],
        b3["figures"]["digits_mlflow_busy_s_per_trial"],
    )
    assert 0 < cpu <= busy * 1.05
    assert 0 < b3["figures"]["digits_mlflow_cpu_pct_of_trial"] < 100
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
