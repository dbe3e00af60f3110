"""Faults in a deployment (issue 25), with real processes: a real ``mlflow server`` that goes
away mid-search and comes back (or never does), one that does not answer at start, on a real
local Ray."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from orchestrator.errors import TrackingError
from orchestrator.search import run_search
from orchestrator.searchtracking import UNSENT_FILE
from orchestrator.tracking.sync import replay
from tests.conftest import tiny_config
from tests.e2e_helpers import ROOT, clean_env, free_port, log_tail

EPOCHS = 12
TRIALS = 6
PER_EPOCH = ("train_loss", "val_loss", "val_accuracy")  # logged at every epoch of a trial


class Server:
    """A real ``mlflow server`` on one port and one store, stopped and started at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = f"sqlite:///{workdir / 'server.db'}"
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def start(self) -> None:
        command = [
            *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.store),
            *("--artifacts-destination", str(self.workdir / "artifacts")),
            *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
        ]
        env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log_tail(self.log)
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            time.sleep(0.3)
        pytest.fail(f"mlflow server did not start:\n{log_tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            import os
            import signal

            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def search_config(url: str, **overrides):
    return tiny_config(
        **{
            "tracking.enabled": True,
            "tracking.tracking_uri": url,
            "tracking.trial_figures": "none",
            "training.epochs": EPOCHS,
            "search.num_samples": TRIALS,
            "search.space": {"training.optimizer.lr": {"loguniform": [1e-3, 1e-2]}},
            **overrides,
        }
    )


def when_trials_run(url: str, experiment: str, timeout: float = 120) -> None:
    """Wait until the search's first trial runs exist in the store."""
    client, deadline = MlflowClient(url), time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            exp = client.get_experiment_by_name(experiment)
            if exp and client.search_runs([exp.experiment_id], "tags.`automl.role` = 'trial'"):
                return
        time.sleep(0.2)


def check_every_epoch(url: str, experiment: str, trial_ids: list[str]) -> None:
    """One parent, one child per trial, every trial's every epoch metric exactly once."""
    client = MlflowClient(url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("automl.role") == "search"]
    trials = [r for r in runs if r.data.tags.get("automl.role") == "trial"]
    assert len(parents) == 1
    assert sorted(r.data.tags["automl.trial_id"] for r in trials) == sorted(trial_ids)
    for run in trials:
        assert run.info.status == "FINISHED", run.data.tags
        for key in PER_EPOCH:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (key, steps)
        assert "cv_accuracy_mean" in run.data.metrics


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_15_s_server_outage_mid_search_loses_nothing(server, tmp_path):
    config = search_config(server.url, **{"tracking.experiment": "outage"})

    def outage() -> None:
        when_trials_run(server.url, "outage")
        server.stop()
        time.sleep(15)
        server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    started = time.monotonic()
    result = run_search(config, name="outage", storage=str(tmp_path / "rr"), refit=False)
    thread.join()
    assert time.monotonic() - started > 15  # the search ran through the outage
    assert len(result.trials) == TRIALS and all(t.status == "TERMINATED" for t in result.trials)
    check_every_epoch(server.url, "outage", [t.trial_id for t in result.trials])
    assert not (tmp_path / "rr" / "outage" / UNSENT_FILE).exists()  # all was sent


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_server_that_never_comes_back_leaves_a_file_that_sync_replays(server, tmp_path):
    config = search_config(server.url, **{"tracking.experiment": "gone", "tracking.retry_s": 4})
    thread = threading.Thread(target=lambda: (when_trials_run(server.url, "gone"), server.stop()))
    thread.start()
    with pytest.raises(TrackingError) as err:
        run_search(config, name="gone", storage=str(tmp_path / "rr"), refit=False)
    thread.join()
    message = str(err.value)
    unsent = tmp_path / "rr" / "gone" / UNSENT_FILE
    assert "\n" not in message and server.url in message and f"automl sync {unsent}" in message
    assert unsent.is_file()

    server.start()  # the same store, back again
    summary = replay(unsent)
    assert summary["trials"] >= 1 and not unsent.exists()
    trial_ids = sorted({t for t in _trial_ids(server.url, "gone")})
    assert len(trial_ids) == TRIALS
    check_every_epoch(server.url, "gone", trial_ids)
    parent = [
        r
        for r in MlflowClient(server.url).search_runs(
            [MlflowClient(server.url).get_experiment_by_name("gone").experiment_id]
        )
        if r.data.tags.get("automl.role") == "search"
    ][0]
    assert parent.info.status == "FAILED"  # the search's own end, replayed


def _trial_ids(url: str, experiment: str) -> list[str]:
    client = MlflowClient(url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`automl.role` = 'trial'")
    return [r.data.tags["automl.trial_id"] for r in runs]


def test_a_server_that_does_not_answer_at_start_is_one_line_before_ray(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "orchestrator.cli", "search"),
            *("--set", "data.source=builtin:iris", "--tracking-uri", url),
        ],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and url in lines[0] and "does not answer" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Ray" not in proc.stdout + proc.stderr  # it never started
    assert time.monotonic() - started < 30
