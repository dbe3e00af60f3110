"""docs/cluster.md's one-machine rehearsal, run as written: PostgreSQL, an MLflow server on it,
a Ray head and a second node with token authentication, a search of 6 trials that joins them
with the token alone, ``automl runs`` against the server, and the clean-up.

The block runs in a PID namespace of its own (``unshare``), so its ``ray stop`` meets only the
nodes it started and never the test session's Ray; ports and the folder are this test's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e_helpers import ROOT, free_port

GUIDE = ROOT / "docs" / "cluster.md"


def guide_block(name: str) -> str:
    """The bash block that follows ``<!-- guide-test: NAME -->`` in the guide."""
    text = GUIDE.read_text()
    found = re.search(rf"<!-- guide-test: {name} -->\s*```bash\n(.*?)```", text, re.S)
    assert found, f"no guide-test block {name!r} in {GUIDE}"
    return found.group(1)


def test_the_guide_has_its_one_machine_block():
    block = guide_block("one-machine")
    for step in ("initdb", "pg_ctl", "mlflow server", "ray start --head", "automl search"):
        assert step in block
    assert "RAY_AUTH_MODE=token automl" not in block  # the search finds the token by itself


@pytest.mark.slow
def test_the_one_machine_rehearsal_runs_as_written():
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("this test runs the guide in a PID namespace: it needs root and unshare")
    work = Path(tempfile.mkdtemp(prefix="automl-guide-", dir="/tmp"))
    work.chmod(0o755)
    script = work / "guide.sh"
    script.write_text(guide_block("one-machine"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "WORK": str(work / "cluster"),
        "PG_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "RAY_PORT": str(free_port()),
        "HOME": str(work / "home"),  # no token of this machine's ~/.ray
    }
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    (work / "home").mkdir()
    cmd = ["unshare", "--pid", "--fork", "--mount-proc", "bash", str(script)]
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=420)
        logs = "".join(
            f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in (work / "cluster").glob("*.log")
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:] + logs
        result = json.loads((work / "cluster" / "search.json").read_text())
        assert result["num_trials"] == 6
        assert all(t["status"] == "TERMINATED" for t in result["trials"])
        # automl runs, read back from the server: the search with its 6 trials and the model
        runs = proc.stdout
        assert re.search(r"FINISHED\s+\S+\s+6 trials", runs), runs
        assert len(re.findall(r"^\s{4}\S+\s+(COMPLETED|FINISHED)", runs, re.M)) == 6, runs
        assert "refit-best  model cluster-guide v1" in runs
    finally:
        subprocess.run(["pkill", "-f", str(work)], check=False)
        shutil.rmtree(work, ignore_errors=True)
