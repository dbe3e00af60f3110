"""`mlflow run .` launches `automl search` inside a run it made itself (MLFLOW_RUN_ID): that run
must become the search's parent and every Ray trial its own child run. Ray workers that inherited
MLFLOW_RUN_ID would all log into that one run instead."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import yaml
from mlflow import MlflowClient

from tests.e2e_helpers import ROOT, clean_env
from tests.test_tracking_fixtures import store_template  # noqa: F401  (a fixture)

EXPERIMENT = "e2e-mlflow-run"
RUN_TIMEOUT = 360  # Ray's start-up and two 2-fold trials; ~60-150 s on a busy 2-core machine
PARENT = "mlflow.parentRunId"
# set by a ray.init() in this process: a child must start its own Ray, whose workers are forked
# from its own environment (the one the failure is about), not join this one
RAY_DRIVER_VARIABLES = {"RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_CLIENT_MODE"}


def reduced_config(folder) -> str:
    """examples/tabular_fnn.yaml with 2 samples, 3 epochs and 2 folds; its absolute path."""
    config = yaml.safe_load((ROOT / "examples" / "tabular_fnn.yaml").read_text())
    config["search"]["num_samples"] = 2
    config["training"]["epochs"] = 3
    config["split"]["folds"] = 2
    config["search"]["storage_path"] = str(folder / "ray")
    path = folder / "tabular_fnn_small.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path.resolve())


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_mlflow_run_is_parent_of_every_trial(store_template, tmp_path):  # noqa: F811
    db = tmp_path / "mr.db"
    shutil.copyfile(store_template, db)
    uri = f"sqlite:///{db}"
    # made here with its artifacts in tmp_path: `mlflow run` would put them under ./mlruns
    MlflowClient(uri).create_experiment(EXPERIMENT, (tmp_path / "artifacts").as_uri())
    env = clean_env(MLFLOW_TRACKING_URI=uri)
    env = {k: v for k, v in env.items() if k not in RAY_DRIVER_VARIABLES}
    command = [
        *(sys.executable, "-m", "mlflow", "run", "."),
        *("-P", f"config={reduced_config(tmp_path)}"),
        *("-P", f"experiment={EXPERIMENT}"),
        *("--experiment-name", EXPERIMENT),
        *("--env-manager", "local"),
    ]
    log = tmp_path / "mlflow-run.log"
    started = time.monotonic()
    with log.open("w") as out:
        try:
            proc = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`mlflow run` ran past {RUN_TIMEOUT} s:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert proc.returncode == 0, output[-4000:]
    assert time.monotonic() - started < RUN_TIMEOUT

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    (project,) = [r for r in runs if r.data.tags.get("mlflow.source.type") == "PROJECT"]
    assert project.info.status == "FINISHED"
    assert project.data.tags["mlflow.project.entryPoint"] == "main"
    # the search adopted the project run as its parent
    assert project.data.tags["automl.role"] == "search"
    assert project.data.tags["automl.status"] == "FINISHED"
    assert project.data.params["experiment"] == EXPERIMENT  # the MLproject parameter
    assert project.data.params["search.num_samples"] == "2"

    trials = [r for r in runs if r.data.tags.get("automl.role") == "trial"]
    assert len(trials) == 2, [(r.info.run_name, r.data.tags.get("automl.role")) for r in runs]
    assert len({r.info.run_id for r in trials}) == 2
    assert len({r.data.tags["automl.trial_id"] for r in trials}) == 2
    for trial in trials:
        assert trial.data.tags[PARENT] == project.info.run_id
        assert trial.info.run_id != project.info.run_id
        # ASHA stops a trial at its last report (max_t = epochs): the run must be complete by then
        assert trial.info.status == "FINISHED", trial.data.tags
        assert trial.data.tags["automl.status"] == "COMPLETED"
        assert "cv_accuracy_mean" in trial.data.metrics
        artifacts = {a.path for a in client.list_artifacts(trial.info.run_id)}
        assert {"confusion_matrix.csv", "cv_summary.json"} <= artifacts
        steps = [m.step for m in client.get_metric_history(trial.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2, 3]
    # trial metrics stayed in the trials: none leaked into the project run
    assert not any(k.startswith(("val_", "cv_", "fold")) for k in project.data.metrics)
    (refit,) = [r for r in runs if r.data.tags.get("automl.role") == "refit"]
    assert refit.data.tags[PARENT] == project.info.run_id and refit.info.status == "FINISHED"
    # one top-level run: the project's
    assert [r.info.run_id for r in runs if PARENT not in r.data.tags] == [project.info.run_id]
