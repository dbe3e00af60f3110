"""A shared MLflow server on PostgreSQL, as a team runs one.

A private PostgreSQL (``initdb`` in a temporary folder, ``pg_ctl`` on 127.0.0.1) backs ``mlflow
server``, which proxies artifacts into its own folder. ``automl search`` runs as a separate process
in a folder of its own and reaches the store only over HTTP: no shared file system. One search is
read back in full; then two run at once, in two experiments registering one model, and nothing may
be lost or duplicated.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from orchestrator.tracking import use_tracking_uri
from tests.e2e_helpers import (
    ROOT,
    clean_env,
    free_port,
    log_tail,
    mlflow_server,
    png_size,
    stop_process_group,
)
from tests.test_mlflow_run import RAY_DRIVER_VARIABLES

PG_USER = "automl"
PG_PASSWORD = "automl-test"
PG_DATABASE = "mlflow"
PG_START_TIMEOUT = 60
TRIALS = 6
EPOCHS = 3
# Ray's start-up, 6 two-fold trials and the refit: ~30 s alone on 2 cores, 45-80 s for two at
# once; the bound leaves room for a loaded CI machine
SEARCH_TIMEOUT = 300
PARENT = "mlflow.parentRunId"
SHARED_MODEL = "pg-shared-model"
INSTALL_POSTGRES = (
    "install it with `apt-get install -y postgresql` (Debian/Ubuntu; `make test` does this when "
    "run as root, through scripts/install-postgres.sh)"
)
PER_EPOCH = ("train_loss", "val_loss", "val_accuracy")


# --------------------------------------------------------------------------- PostgreSQL
def postgres_bin() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: Debian's newest ``/usr/lib/postgresql/N/bin``,
    else the PATH's. Fails the test, saying how to install them, when there are none: CI
    installs them, so a skip would hide a broken set-up."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0],
    )
    for folder in reversed(debian):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    pytest.fail(
        "the PostgreSQL server test needs PostgreSQL's initdb and pg_ctl, found neither under "
        f"/usr/lib/postgresql/*/bin nor on PATH: {INSTALL_POSTGRES}"
    )


def postgres_driver():
    """psycopg 3, the driver of MLflow's ``postgresql+psycopg://`` URLs (the ``server`` extra)."""
    try:
        import psycopg
    except ImportError:
        pytest.fail(
            "the PostgreSQL server test needs the psycopg driver: `pip install -e '.[server]'` "
            "(`make test` installs it)"
        )
    return psycopg


def postgres_user() -> pwd.struct_passwd | None:
    """The ``postgres`` account when we are root (PostgreSQL refuses to run as root), else None:
    a non-root user runs it as themselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, but there is no `postgres` user to run PostgreSQL as: "
            + INSTALL_POSTGRES
        )


def as_postgres(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user when we are root, else as ourselves."""
    if postgres_user() is None:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root, but `runuser` (util-linux) is missing to run PostgreSQL")
    return [runuser, "-u", "postgres", "--", *command]


def run_postgres_tool(command: list[str], log: Path, timeout: int = PG_START_TIMEOUT) -> None:
    done = subprocess.run(
        as_postgres(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout[-2000:]}"
            f"{done.stderr[-2000:]}\nserver log:\n{log_tail(log)}"
        )


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """A PostgreSQL of our own: ``initdb`` in a new temporary folder, listening on 127.0.0.1 at a
    free port (its Unix socket in that folder too), with database ``mlflow`` owned by a password
    user. Yields the SQLAlchemy URL for psycopg 3; ``pg_ctl stop`` and the folder's removal always
    follow."""
    binaries = postgres_bin()
    psycopg = postgres_driver()
    # not under pytest's tmp_path: as root, that is a 0700 folder the postgres user cannot enter
    folder = Path(tempfile.mkdtemp(prefix="automl-pg-"))
    data, log, password = folder / "data", folder / "postgres.log", folder / "password"
    password.write_text(PG_PASSWORD + "\n")
    owner = postgres_user()
    if owner is not None:
        for path in (folder, password):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    started = False
    try:
        run_postgres_tool(
            [
                str(binaries / "initdb"),
                *("-D", str(data)),
                *("-U", PG_USER),
                f"--pwfile={password}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",  # the server logs in with the password in its URL
                *("-E", "UTF8"),
                "--no-locale",
                "--no-sync",  # a throwaway cluster: no fsync of its fresh files
            ],
            log,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        started = True  # from here on, try to stop it whatever pg_ctl start says
        run_postgres_tool(
            [
                str(binaries / "pg_ctl"),
                *("-D", str(data)),
                *("-l", str(log)),
                *("-o", options),
                *("-t", str(PG_START_TIMEOUT)),
                "-w",
                "start",
            ],
            log,
            timeout=PG_START_TIMEOUT + 10,
        )
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user=PG_USER,
            password=PG_PASSWORD,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        if started:
            stop_postgres(binaries / "pg_ctl", data)
        shutil.rmtree(folder, ignore_errors=True)


def stop_postgres(pg_ctl: Path, data: Path) -> None:
    """``pg_ctl stop``: fast (sessions ended, a clean shut-down), else immediate."""
    for mode in ("fast", "immediate"):
        command = [str(pg_ctl), "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"]
        with contextlib.suppress(subprocess.SubprocessError):
            done = subprocess.run(as_postgres(command), capture_output=True, timeout=40)
            if done.returncode == 0 or not (data / "postmaster.pid").exists():
                return


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with private_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def server(postgres_url, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on the private PostgreSQL, proxying artifacts (its default) into a
    folder only it writes: ``(URL, that folder)``."""
    workdir = tmp_path_factory.mktemp("pg-server")
    artifacts = workdir / "artifacts"
    artifacts.mkdir()
    with mlflow_server(postgres_url, workdir, "--artifacts-destination", str(artifacts)) as url:
        yield url, artifacts


# --------------------------------------------------------------------------- searches
def search_config(folder: Path, seed: int) -> Path:
    """A 6-trial random search of FNNs on iris, 2 folds, 3 epochs each (FIFO: every trial trains
    every epoch), figures logged for every trial."""
    config = {
        "seed": seed,
        "data": {"source": "builtin:iris"},
        "split": {"folds": 2},
        "model": {"family": "fnn", "hidden_sizes": [16]},
        "training": {"epochs": EPOCHS, "batch_size": 32, "early_stopping": {"enabled": False}},
        "search": {
            "algorithm": "random",
            "num_samples": TRIALS,
            "scheduler": "fifo",
            "space": {
                "training.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]},
                "model.hidden_sizes": {"choice": [[8], [16]]},
            },
        },
        "tracking": {"trial_figures": "all"},
    }
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def automl_search(
    url: str, folder: Path, experiment: str, seed: int = 0, *options: str
) -> Iterator[subprocess.Popen]:
    """``automl search`` started in ``folder`` (its own working directory, nothing shared with the
    server's) with ``MLFLOW_TRACKING_URI`` the server's URL; its whole process group (Ray's
    processes too) is always ended."""
    folder.mkdir(parents=True, exist_ok=True)
    env = clean_env(MLFLOW_TRACKING_URI=url, PYTHONPATH=str(ROOT))
    # a Ray started by this test process must not be joined: each search starts its own
    env = {k: v for k, v in env.items() if k not in RAY_DRIVER_VARIABLES}
    command = [
        *(sys.executable, "-m", "orchestrator.cli", "search"),
        *("--config", str(search_config(folder, seed))),
        *("--experiment", experiment),
        *("--storage", str(folder / "ray")),
        *("--json", str(folder / "search.json")),
        *options,
    ]
    with (folder / "search.log").open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_process_group(proc)


def wait_for(proc: subprocess.Popen, folder: Path, deadline: float) -> dict:
    """The search's JSON once it has exited 0 (before ``deadline``, a monotonic time)."""
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"automl search ran past {SEARCH_TIMEOUT} s:\n{log_tail(folder / 'search.log')}"
        )
    assert proc.returncode == 0, log_tail(folder / "search.log", 5000)
    return json.loads((folder / "search.json").read_text())


def check_search(client: MlflowClient, experiment: str, folder: Path, payload: dict) -> dict:
    """Everything one search logged, read back through the server: one parent run, one child run
    per trial, every epoch's metrics, the trials' artifacts, the refit run and its registered
    model version. Returns the refit run's ``(registered model, version, test score)``."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    # the server chose the artifact root: uploads went through its proxy
    assert found.artifact_location.startswith("mlflow-artifacts:"), found.artifact_location
    runs = client.search_runs([found.experiment_id], max_results=1000)
    by_role: dict[str, list] = {}
    for run in runs:
        by_role.setdefault(run.data.tags.get("automl.role"), []).append(run)
    (parent,) = by_role.pop("search")
    trials, (refit,) = by_role.pop("trial"), by_role.pop("refit")
    assert not by_role, f"unexpected runs: {sorted(map(str, by_role))}"
    assert parent.info.status == "FINISHED" and parent.info.run_name == experiment

    # one child per trial: none lost, none logged twice
    assert len(trials) == TRIALS
    assert len({r.info.run_id for r in trials}) == TRIALS
    trial_ids = {r.data.tags["automl.trial_id"] for r in trials}
    assert trial_ids == {t["trial_id"] for t in payload["trials"]} and len(trial_ids) == TRIALS
    for run in [*trials, refit]:
        assert run.data.tags[PARENT] == parent.info.run_id

    totals = set()
    for trial in trials:
        run_id = trial.info.run_id
        assert trial.info.status == "FINISHED", trial.data.tags.get("automl.error")
        for key in PER_EPOCH:  # every epoch once: steps 1..EPOCHS, no gap, no duplicate
            history = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), key
        assert "cv_accuracy_mean" in trial.data.metrics
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"config.json", "confusion_matrix.csv", "confusion_matrix.png"} <= names, names
        local = Path(client.download_artifacts(run_id, "", str(folder / "read" / run_id)))
        sent = json.loads((local / "config.json").read_text())
        assert sent["training"]["epochs"] == EPOCHS
        counts = pd.read_csv(local / "confusion_matrix.csv", index_col=0)
        assert counts.shape == (3, 3)
        totals.add(int(counts.to_numpy().sum()))  # every non-test row validated once
        assert min(png_size((local / "confusion_matrix.png").read_bytes())) > 0
    assert len(totals) == 1

    assert refit.info.status == "FINISHED" and refit.info.run_name == "refit-best"
    name = refit.data.tags["automl.registered_model"]
    number = refit.data.tags["automl.model_version"]
    version = client.get_model_version(name, number)
    assert version.status == "READY" and version.run_id == refit.info.run_id
    score = refit.data.metrics["test_accuracy"]
    assert float(version.tags["test_accuracy"]) == pytest.approx(score)
    assert {"config.json", "test_confusion_matrix.csv"} <= {
        a.path for a in client.list_artifacts(refit.info.run_id)
    }
    # the registered model's files, downloaded through the server
    with use_tracking_uri(client.tracking_uri):  # models:/ URIs resolve in the fluent registry
        model = mlflow.artifacts.download_artifacts(
            f"models:/{name}/{number}", dst_path=str(folder / "model")
        )
    assert (Path(model) / "MLmodel").is_file()
    # nothing of the store was written where the search ran
    assert not {"mlflow.db", "mlruns", "mlartifacts"} & {p.name for p in folder.iterdir()}
    return {"model": name, "version": number, "score": score, "run_id": refit.info.run_id}


@pytest.mark.slow
@pytest.mark.timeout(SEARCH_TIMEOUT + 180)
def test_search_logs_over_http_to_a_server_on_postgresql(server, tmp_path):
    url, artifacts = server
    deadline = time.monotonic() + SEARCH_TIMEOUT
    with automl_search(url, tmp_path / "search", "pg-one") as proc:
        payload = wait_for(proc, tmp_path / "search", deadline)
    client = MlflowClient(url)
    refit = check_search(client, "pg-one", tmp_path / "search", payload)

    assert refit["model"] == "pg-one" and refit["version"] == "1"
    champion = client.get_model_version_by_alias("pg-one", "champion")
    assert champion.version == "1" and champion.run_id == refit["run_id"]
    # the proxied uploads landed in the server's artifact destination
    assert len(list(artifacts.rglob("confusion_matrix.csv"))) >= TRIALS


@pytest.mark.slow
@pytest.mark.timeout(SEARCH_TIMEOUT + 180)
def test_two_searches_at_once_lose_and_duplicate_nothing(server, tmp_path):
    """Two experiments logged at once, both registering into one model: every run and version
    once, and the champion alias on the better of the two."""
    url, _ = server
    deadline = time.monotonic() + SEARCH_TIMEOUT
    experiments = {"pg-left": 1, "pg-right": 2}  # name: seed (different trials, same model)
    folders = {name: tmp_path / name for name in experiments}
    shared = ("--set", f"tracking.registered_model={SHARED_MODEL}")
    with contextlib.ExitStack() as stack:
        procs = {
            name: stack.enter_context(automl_search(url, folders[name], name, seed, *shared))
            for name, seed in experiments.items()
        }
        payloads = {name: wait_for(proc, folders[name], deadline) for name, proc in procs.items()}
    client = MlflowClient(url)
    refits = [check_search(client, n, folders[n], payloads[n]) for n in experiments]

    versions = client.search_model_versions(f"name = '{SHARED_MODEL}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert {v.run_id for v in versions} == {r["run_id"] for r in refits}
    assert {r["version"] for r in refits} == {"1", "2"}
    champion = client.get_model_version_by_alias(SHARED_MODEL, "champion")
    best = max(r["score"] for r in refits)
    assert float(champion.tags["test_accuracy"]) == pytest.approx(best)
