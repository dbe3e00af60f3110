"""The command's refusal of IPython: MLflow and Ray run as if it were not installed."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from orchestrator.leanimports import block_notebook_probes
print("blocked", block_notebook_probes())
try:
    import IPython
    print("imported")
except ImportError as err:
    print("refused", type(err).__name__)
import mlflow, ray._private.ray_logging  # ray checks "IPython" in sys.modules
mlflow.set_tracking_uri(sys.argv[1])
with mlflow.start_run() as run:  # the notebook context providers ask for IPython
    mlflow.log_metric("m", 1.0)
print("run", mlflow.get_run(run.info.run_id).data.metrics["m"])
print("loaded", "IPython" in sys.modules)
"""


def run_probe(tmp_path, env_value: str | None) -> str:
    """The probe in a fresh interpreter that has an IPython to import (a stand-in on the path,
    whether or not the real one is installed)."""
    import os

    fake = tmp_path / "site" / "IPython"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("def get_ipython():\n    return None\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fake.parent), env.get("PYTHONPATH")]))
    env.pop("AUTOML_LEAN_IMPORTS", None)
    if env_value is not None:
        env["AUTOML_LEAN_IMPORTS"] = env_value
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, uri], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_blocked_ipython_is_refused_and_an_mlflow_run_still_works(tmp_path):
    out = run_probe(tmp_path, None)
    assert "blocked True" in out and "refused ModuleNotFoundError" in out
    assert "run 1.0" in out and "loaded False" in out


def test_the_variable_turns_the_refusal_off(tmp_path):
    out = run_probe(tmp_path, "0")
    assert "blocked False" in out and "imported" in out and "loaded True" in out


WORKER_PROBE = """
import sys
import orchestrator.workerstart  # what a local Ray's trial worker preloads
from ray import tune

class Trial(tune.Trainable):  # an actor's Trainable.__init__ asks IPython to switch output off
    def is_actor(self):  # as it is in a Ray worker
        return True

    def step(self):
        return {"done": True}

Trial(config={})
print("loaded", "IPython" in sys.modules)
"""


def test_a_trial_worker_refuses_ipython_too(tmp_path):
    """Ray Tune's Trainable.__init__ imports IPython; after the workers' preload it cannot."""
    import os

    fake = tmp_path / "site" / "IPython"
    fake.mkdir(parents=True)
    (fake / "core").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "interactiveshell.py").write_text(
        "class InteractiveShell:\n    @classmethod\n    def clear_instance(cls):\n        pass\n"
    )
    results = []
    for value in (None, "0"):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fake.parent), env.get("PYTHONPATH")]))
        env.pop("AUTOML_LEAN_IMPORTS", None)
        if value is not None:
            env["AUTOML_LEAN_IMPORTS"] = value
        out = subprocess.run(
            [sys.executable, "-c", WORKER_PROBE],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        results.append(out.stdout.split()[-1])
    assert results == ["False", "True"]  # refused; with AUTOML_LEAN_IMPORTS=0 imported
