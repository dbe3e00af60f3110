"""`automl search --address` against real Ray clusters on this machine, started as the Ray docs
start them (`ray start --head`, `ray start --address`), each node with one CPU: a two-node cluster
with token authentication, which the search joins with the token and nothing else exported (no
RAY_AUTH_MODE); a cluster without it, which the search joins though a token is at hand; a wrong
or missing token, and an address where no Ray answers, each as one line and exit status 2.

The search runs as a child process (`python -m orchestrator.cli`): this test session has its own
local Ray. Each cluster lives under its own short temporary folder (`--temp-dir`), and every
process it started is stopped by its id, found by that folder: `ray stop` would stop every Ray on
the machine, the session's included.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from tests.e2e_helpers import ROOT, clean_env, free_port

# Ray's command line, installed beside this interpreter (or else on PATH)
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray") or "ray"
START_TIMEOUT = 120  # `ray start` takes 5-10 s; much more on a busy 2-core machine
SEARCH_TIMEOUT = 240
TRIALS = 6


@dataclass
class Cluster:
    address: str
    token: str | None
    folders: list[Path]  # each node's --temp-dir

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those whose command line names one of its folders
        (GCS, raylets, their helpers), and all their descendants (workers, agents)."""
        roots = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                line = " ".join(proc.info["cmdline"] or [])
                if proc.pid != os.getpid() and any(str(f) in line for f in self.folders):
                    roots.append(proc)
        found = {p.pid: p for p in roots}
        for proc in roots:
            with contextlib.suppress(psutil.Error):
                found.update({c.pid: c for c in proc.children(recursive=True)})
        return list(found.values())

    def node_of_pid(self, pid: int) -> Path | None:
        """The node (its folder) whose Ray worker logs are those of process ``pid``: Ray keeps
        a `python-core-worker-<id>_<pid>.log` in the folder of the node the worker ran on."""
        for folder in self.folders:
            if list(folder.glob(f"session_*/logs/python-core-worker-*_{pid}.log")):
                return folder
        return None


def ray_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without Ray's driver variables (this session's own `ray.init` set
    RAY_AUTH_MODE) and with its own HOME, so no `~/.ray/auth_token` of this machine is read."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    return env


def ray_start(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [RAY, "start", *args, "--disable-usage-stats"],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def stop(cluster: Cluster) -> None:
    """SIGKILL every process of the cluster and wait until they are gone (a test cluster needs
    no graceful end; its workers also end when their raylet does)."""
    for _ in range(3):
        procs = cluster.processes()
        if not procs:
            return
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)
    assert cluster.processes() == []


@contextlib.contextmanager
def ray_cluster(home: Path, token: str | None, nodes: int) -> Iterator[Cluster]:
    """A head and ``nodes - 1`` more nodes on 127.0.0.1, one CPU each, with token
    authentication when ``token`` is given (RAY_AUTH_MODE=token and RAY_AUTH_TOKEN for `ray
    start`, as Ray's docs set it up); stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="automl-ray-", dir="/tmp"))  # socket paths stay short
    mode = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token} if token else {}
    env = ray_env(home, **(mode or {"RAY_AUTH_MODE": "disabled"}))
    port = free_port()
    address = f"127.0.0.1:{port}"
    folders = [root / f"node{i}" for i in range(nodes)]
    cluster = Cluster(address, token, folders)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1"]
    try:
        head = ["--head", "--port", str(port), "--include-dashboard", "false"]
        ray_start([*head, *common, "--temp-dir", str(folders[0])], env)
        for folder in folders[1:]:
            ray_start(["--address", address, *common, "--temp-dir", str(folder)], env)
        yield cluster
    finally:
        stop(cluster)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("cluster-home")
    with ray_cluster(home, secrets.token_hex(32), nodes=2) as cluster:
        yield cluster


def write_table(folder: Path, rows: int = 180) -> Path:
    """A 3-class table of 8 columns as CSV."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=rows)
    X = rng.normal(size=(rows, 8)) + y[:, None] * 0.5
    frame = pd.DataFrame(X.round(4), columns=[f"x{i}" for i in range(8)]).assign(label=y)
    folder.mkdir(parents=True)
    path = folder / "table.csv"
    frame.to_csv(path, index=False)
    return path


def search_command(
    address: str, data: Path, work: Path, name: str, samples: int, epochs: int = 3
) -> list[str]:
    return [
        *(sys.executable, "-m", "orchestrator.cli", "search", "--address", address),
        *("--data", str(data), "--target", "label", "--model", "fnn"),
        *("--folds", "2", "--epochs", str(epochs), "--seed", "0", "--no-tracking"),
        *("--set", "training.early_stopping.enabled=false"),
        *("--algorithm", "random", "--num-samples", str(samples)),
        *("--experiment", name, "--storage", str(work / "ray"), "--json", str(work / "out.json")),
    ]


def run_search(command: list[str], env: dict[str, str], work: Path) -> subprocess.Popen:
    log = (work / "search.log").open("w")
    return subprocess.Popen(
        command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )


def finish(proc: subprocess.Popen, work: Path) -> str:
    try:
        proc.wait(timeout=SEARCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output = (work / "search.log").read_text()
    assert proc.returncode == 0, output[-4000:]
    return output


def trial_pids(experiment: Path) -> dict[str, tuple[int, float]]:
    """Each trial's worker process and the time of its first result, from Tune's own result
    files (`pid` and `timestamp` are filled in by Ray Tune)."""
    found = {}
    for path in experiment.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found[rows[0]["trial_id"]] = (int(rows[0]["pid"]), float(rows[0]["timestamp"]))
    return found


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT * 2 + SEARCH_TIMEOUT + 60)
def test_search_runs_on_both_nodes_of_a_token_cluster(token_cluster, tmp_path):
    """The token in RAY_AUTH_TOKEN and RAY_AUTH_MODE unset: the search finds out that the
    cluster asks for a token and uses it. The data's folder is removed once the driver has
    loaded it (its experiment folder appears only after that, before any trial starts): the
    trials, on both nodes, get the data through Ray's object store."""
    # trials of a few seconds: a trial actor on the second node (a new worker that imports
    # torch and pulls the data from the head) must be ready before the first node's actor,
    # which Tune reuses, has run them all
    data = write_table(tmp_path / "data", rows=1500)
    work = tmp_path / "work"
    work.mkdir()
    env = ray_env(tmp_path / "home", RAY_AUTH_TOKEN=token_cluster.token)
    command = search_command(token_cluster.address, data, work, "cluster-token", TRIALS, 20)
    started = time.monotonic()
    proc = run_search(command, env, work)
    marker = work / "ray" / "cluster-token" / "automl_config.json"
    deadline = time.monotonic() + SEARCH_TIMEOUT
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(data.parent)
    removed_at = time.time()
    output = finish(proc, work)
    took = time.monotonic() - started

    result = json.loads((work / "out.json").read_text())
    assert result["num_trials"] == TRIALS, output[-3000:]
    assert {t["status"] for t in result["trials"]} == {"TERMINATED"}, output[-3000:]
    assert result["best"]["test"]["accuracy"] > 0.4  # 3 classes
    pids = trial_pids(work / "ray" / "cluster-token")
    assert set(pids) == {t["trial_id"] for t in result["trials"]}
    # every trial reported after the data was gone from disk
    assert min(at for _, at in pids.values()) >= int(removed_at)  # Tune: whole seconds
    nodes = {token_cluster.node_of_pid(pid) for pid, _ in pids.values()}
    assert nodes == set(token_cluster.folders), (pids, nodes)
    # the search only disconnected: the cluster it joined runs on
    names = {p.name() for p in token_cluster.processes()}
    assert {"gcs_server", "raylet"} <= names
    assert sum(p.name() == "raylet" for p in token_cluster.processes()) == 2
    per_node = [[token_cluster.node_of_pid(p) for p, _ in pids.values()].count(f) for f in nodes]
    print(f"token cluster search: {took:.1f} s, trials per node {per_node}")


def one_line_failure(command: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    took = time.monotonic() - started
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, lines[-40:]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines[-40:]
    assert "Traceback" not in done.stderr
    return lines[0], took


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT * 2 + 180)
def test_a_wrong_or_missing_token_is_one_line(token_cluster, tmp_path):
    # both at once: each mostly waits out Ray's own give-up time (~21 s)
    def attempt(how: str) -> tuple[str, str, float]:
        folder = tmp_path / how
        folder.mkdir()
        env = ray_env(folder / "home")
        if how == "wrong":  # in a file, as RAY_AUTH_TOKEN_PATH names it
            (folder / "token").write_text("not-the-token")
            env["RAY_AUTH_TOKEN_PATH"] = str(folder / "token")
        data = write_table(folder / "data")
        command = search_command(token_cluster.address, data, folder, "denied", 2)
        return (how, *one_line_failure(command, env, folder))

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(attempt, ["wrong", "missing"]))
    for how, line, took in outcomes:
        assert f"the Ray cluster at {token_cluster.address}" in line
        if how == "wrong":
            assert "refused the token from RAY_AUTH_TOKEN_PATH" in line
        else:
            assert "asks for a token and none was found" in line
        names = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "auth_token")
        assert all(name in line for name in names)
        assert took < 60
        assert not (tmp_path / how / "ray").exists()  # nothing ran


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + SEARCH_TIMEOUT + 60)
def test_a_cluster_without_token_auth_is_joined_though_a_token_is_at_hand(tmp_path):
    """A token in ~/.ray/auth_token (a local `ray.init` writes one there) and a cluster that
    does not use tokens: the search joins it without one."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    with ray_cluster(tmp_path / "cluster-home", None, nodes=1) as cluster:
        data = write_table(tmp_path / "data")
        work = tmp_path / "work"
        work.mkdir()
        command = search_command(cluster.address, data, work, "cluster-open", 2)
        output = finish(run_search(command, ray_env(home), work), work)
        result = json.loads((work / "out.json").read_text())
        assert [t["status"] for t in result["trials"]] == ["TERMINATED"] * 2, output[-3000:]


def test_an_unreachable_address_is_one_line_within_30_s(tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    command = search_command(address, tmp_path / "t.csv", tmp_path, "nowhere", 2)
    line, took = one_line_failure(command, ray_env(tmp_path), tmp_path)
    assert line.startswith(f"error: cannot reach a Ray cluster at {address}: connection refused")
    assert "RAY_ADDRESS" in line
    assert took < 30


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_address_where_no_ray_answers_is_one_line_within_the_bound(tmp_path):
    """Something listens there but never answers as Ray would: `ray.init` would wait without
    end; the join gives up after JOIN_TIMEOUT_S (here lowered to 3 s)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code = (
            "import sys, orchestrator.raycluster as c; c.JOIN_TIMEOUT_S = 3.0; "
            "from orchestrator.cli import entry; sys.argv[0] = 'automl'; entry()"
        )
        command = search_command(address, tmp_path / "t.csv", tmp_path, "silent", 2)
        command = [sys.executable, "-c", code, *command[3:]]
        line, took = one_line_failure(command, ray_env(tmp_path), tmp_path)
    assert line.startswith(f"error: no Ray cluster answered at {address} within 3 s")
    assert took < 30
