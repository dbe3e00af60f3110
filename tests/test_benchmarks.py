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
        "ours_tracking_tables_steady_trials_per_s",
        "digits_mlflow_tables_pct_of_trial",
        "digits_mlflow_in_trial_pct",
        "digits_mlflow_tables_in_trial_pct",
    } <= set(b3["figures"])
    assert b3["figures"]["raw_tune_trials_per_s"] > 0
    # measured inside the trials: a real share of each trial's time
    assert 0 < b3["figures"]["digits_mlflow_in_trial_pct"] < 100
    assert 0 < b3["figures"]["digits_mlflow_in_trial_s"]
    assert len(b3["reps"]) == 1
    # trials/s and MLflow share, each with figures on and with tracking.trial_figures off
    assert [g["benchmark"] for g in doc["goals"]] == ["B3"] * 4
    assert all({"label", "value", "target", "passed"} <= set(g) for g in doc["goals"])
    assert "B3" in (out / "latest.md").read_text()
