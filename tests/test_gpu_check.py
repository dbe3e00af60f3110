"""The GPU check script's smoke run on the CPU: every step runs, and Ray packs fractional GPU
trials onto one (declared) GPU: 1 trial at a time with 1 GPU each, 2 at once with 0.5 each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e_helpers import ROOT as REPO


@pytest.mark.slow
def test_gpu_check_runs_and_fractions_pack_trials(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick"]
    cmd += ["--trials", "4", "--epochs", "2", "--cpus-per-trial", "0.25", "--per-gpu", "1,2"]
    cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = {row["trials_per_gpu"]: row for row in doc["search"]}
    assert all(row["trials"] == 4 and row["errors"] == 0 for row in rows.values())
    assert rows[1]["most_at_once"] == 1  # one GPU, one trial at a time
    assert rows[2]["most_at_once"] == 2  # two halves of the GPU: two trials at once
    assert doc["fused"]["speedup"] > 0 and doc["precision"]["bf16"]["test_accuracy"] >= 0
    assert "trials/min" in proc.stdout and "speed-up" in proc.stdout
