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


def automl(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *args]


def trial_runs(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], "tags.`automl.role` = 'trial'")
    return {r.data.tags["automl.trial_id"]: r for r in runs}


@pytest.mark.slow
def test_a_sigkilled_driver_is_resumed_without_losing_or_repeating_trials(tmp_path):
    import os
    import signal

    import yaml

    from orchestrator.config import validate_config
    from orchestrator.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    config = {
        "data": {"source": "builtin:iris"},
        "split": {"folds": 2},
        "model": {"hidden_sizes": [16]},
        "training": {"epochs": 300, "early_stopping": {"enabled": False}},
        "search": {"num_samples": 4, "max_concurrent": 1},
        "tracking": {"tracking_uri": uri, "trial_figures": "none"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    env = clean_env(PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        automl("search", "--config", "c.yaml", "--experiment", "killed", "--storage", "rr"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        done: dict[str, object] = {}
        while len(done) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            with contextlib.suppress(Exception):
                runs = trial_runs(uri, "killed")
                done = {k: r for k, r in runs.items() if r.info.status == "FINISHED"}
        assert len(done) >= 2, "no two trials finished in time"
        time.sleep(2.5)  # Tune saves the search's state every second
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as an OOM killer would
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what the dead driver's local Ray left
    before = trial_runs(uri, "killed")
    finished = {
        k: (r.info.run_id, r.info.end_time)
        for k, r in before.items()
        if r.info.status == "FINISHED"
    }
    stale = [k for k, r in before.items() if r.info.status == "RUNNING"]
    assert stale, "the dead driver left no trial RUNNING"
    # what --resume does first: the runs the dead driver left RUNNING are marked KILLED
    tracker = SearchTracker(uri, "killed")
    tracker.start(validate_config(config), "killed", resume=True)
    assert tracker.kill_stale_trials() == len(stale)
    for trial_id, run in trial_runs(uri, "killed").items():
        if trial_id in stale:
            assert run.info.status == "KILLED" and "driver died" in run.data.tags["automl.error"]

    out = subprocess.run(
        automl("search", "--resume", "killed", "--storage", "rr"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("killed")
    runs = client.search_runs([exp.experiment_id])
    assert len([r for r in runs if r.data.tags.get("automl.role") == "search"]) == 1
    after = trial_runs(uri, "killed")
    assert len(after) == 4  # one child run per trial: the stale ones were reopened
    assert all(r.info.status == "FINISHED" for r in after.values())
    for trial_id, (run_id, end_time) in finished.items():  # not run again
        assert (after[trial_id].info.run_id, after[trial_id].info.end_time) == (run_id, end_time)
    for trial_id in stale:
        assert "automl.error" not in after[trial_id].data.tags


@pytest.mark.slow
def test_two_searches_on_one_sqlite_store_both_finish(tmp_path):
    import yaml

    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    config = {
        "data": {"source": "builtin:iris"},
        "split": {"folds": 2},
        "model": {"hidden_sizes": [16]},
        "training": {"epochs": 5, "early_stopping": {"enabled": False}},
        "search": {"num_samples": 3},
        "tracking": {"tracking_uri": uri, "trial_figures": "all"},  # many writes at once
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    env = clean_env(PYTHONPATH=str(ROOT))
    procs = {
        name: subprocess.Popen(
            automl("search", "--config", "c.yaml", "--experiment", name, "--storage", "rr"),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    }
    outputs = {name: proc.communicate(timeout=400) for name, proc in procs.items()}
    for name, proc in procs.items():
        out, err = outputs[name]
        assert proc.returncode == 0, err[-3000:]
        assert "database is locked" not in out + err
        runs = trial_runs(uri, name)
        assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs.values())


def in_small_disk(folder: Path, size_kb: int, command: list[str]) -> list[str]:
    """``command`` in its own mount namespace where ``folder`` is a tmpfs of ``size_kb``."""
    import os
    import shlex
    import shutil as sh

    unshare = sh.which("unshare")
    assert unshare, "the disk-full test needs util-linux's unshare"
    flags = ["-m"] if os.geteuid() == 0 else ["-Urm"]
    mount = f"mount -t tmpfs -o size={size_kb}k tmpfs {shlex.quote(str(folder))}"
    return [unshare, *flags, "sh", "-c", f"{mount} && exec {shlex.join(command)}"]


@pytest.mark.slow
def test_a_full_artifact_disk_is_one_line_naming_it_and_no_run_stays_running(tmp_path):
    import yaml

    artifacts = tmp_path / "mlartifacts"  # where a local SQLite store keeps artifacts
    artifacts.mkdir()
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    config = {
        "data": {"source": "builtin:iris"},
        "split": {"folds": 2},
        "model": {"hidden_sizes": [16]},
        "training": {"epochs": 3},
        "search": {"num_samples": 3},
        "tracking": {"tracking_uri": uri, "trial_figures": "all"},  # PNGs fill 96 KB soon
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    search = automl("search", "--config", "c.yaml", "--experiment", "full", "--storage", "rr")
    proc = subprocess.run(
        in_small_disk(artifacts, 96, search),
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"the artifact location {artifacts}" in errors[0] and "is full" in errors[0]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("full").experiment_id])
    assert runs and not [r for r in runs if r.info.status == "RUNNING"]
    parent = next(r for r in runs if r.data.tags.get("automl.role") == "search")
    assert parent.info.status == "FAILED" and "is full" in parent.data.tags["automl.error"]
    failed = [r for r in runs if r.data.tags.get("automl.role") == "trial"]
    assert any(
        r.info.status == "FAILED" and "is full" in r.data.tags["automl.error"] for r in failed
    )
