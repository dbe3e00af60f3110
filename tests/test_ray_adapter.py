"""The Ray adapter: how the driver starts or joins Ray (its own wrapper logic, with ray.init
faked), how it decides on Ray's token authentication before Ray is imported
(``orchestrator.raycluster``, with the probe faked), and the TrialEvents callback that hands
Tune's trial events to a listener. Real clusters: tests/test_cluster.py."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
from click.testing import CliRunner

from orchestrator import outer_run, ray_adapter, raycluster
from orchestrator.cli import main
from orchestrator.errors import ClusterError
from orchestrator.ray_adapter import QUIET, RESULT_KEY, TrialEvents, _running_events

AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


@pytest.fixture
def no_auth(monkeypatch, tmp_path):
    """None of Ray's token variables, a HOME without ~/.ray/auth_token, nothing joined yet,
    and every address reachable; the variables come back as they were afterwards."""
    for name in AUTH_VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so that the test's own changes are undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(raycluster, "_PREPARED", {})
    monkeypatch.setattr(raycluster, "check_reachable", lambda address: None)
    return tmp_path


@pytest.fixture
def fake_init(monkeypatch, no_auth):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    return calls


def test_a_local_start_passes_only_public_arguments(fake_init):
    ray_adapter.ensure_ray(num_cpus=2)
    (kwargs,) = fake_init
    assert kwargs == {
        "address": None,
        "num_cpus": 2,
        "include_dashboard": False,
        "configure_logging": False,
        "log_to_driver": False,
    }


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_cluster_is_joined_by_address_and_keeps_its_own_resources(fake_init, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
        ray_adapter.ensure_ray(num_cpus=2)
    else:
        ray_adapter.ensure_ray("127.0.0.1:6379", num_cpus=2)
    (kwargs,) = fake_init
    assert kwargs == {"address": "127.0.0.1:6379", **QUIET}  # the cluster's own resources


def ray_failing_with(error: BaseException):
    def init(**kwargs):
        raise error

    return init


def refused_join() -> ConnectionError:
    """What ray.init raises where the cluster turns a driver away for its token."""
    try:
        try:
            raise RuntimeError(
                "Failed to connect to GCS. Last connection error: Traceback ...\n"
                "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: ..."
            )
        except RuntimeError as cause:
            raise ConnectionError("Failed to connect to Ray cluster at 1.2.3.4:6379") from cause
    except ConnectionError as err:
        return err


@pytest.mark.parametrize(
    "error, expected",
    [
        (refused_join(), "the Ray cluster at 127.0.0.1:6379 asks for a token and none was found"),
        (
            ConnectionError("Failed to connect to Ray cluster\nmore"),
            "cannot join the Ray cluster at 127.0.0.1:6379: Failed to connect to Ray cluster$",
        ),
    ],
    ids=["token", "other"],
)
def test_a_failed_join_is_one_line(fake_init, monkeypatch, error, expected):
    monkeypatch.setattr(ray, "init", ray_failing_with(error))
    with pytest.raises(ClusterError, match=expected):
        ray_adapter.ensure_ray("127.0.0.1:6379")


def test_a_join_that_hangs_is_given_up(fake_init, monkeypatch):
    """ray.init waits without end where something that is not Ray listens."""
    release = threading.Event()
    monkeypatch.setattr(ray, "init", lambda **kwargs: release.wait(10))
    monkeypatch.setattr(raycluster, "JOIN_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(ClusterError, match="no Ray cluster answered at 127.0.0.1:6379 within"):
            ray_adapter.ensure_ray("127.0.0.1:6379")
    finally:
        release.set()


def test_auth_failures_are_recognised():
    from ray.exceptions import AuthenticationError

    assert ray_adapter.is_auth_failure(refused_join())
    assert ray_adapter.is_auth_failure(AuthenticationError("RPC error: InvalidAuthToken"))
    assert not ray_adapter.is_auth_failure(ConnectionError("Failed to connect"))


def test_token_sources_in_rays_order(no_auth, monkeypatch):
    home = no_auth
    assert raycluster.token_source() is None
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("t1\n")
    assert raycluster.token_source() == "~/.ray/auth_token"
    (home / "tok").write_text("t2")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(home / "tok"))
    assert raycluster.token_source() == f"RAY_AUTH_TOKEN_PATH ({home / 'tok'})"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t3")
    assert raycluster.token_source() == "RAY_AUTH_TOKEN"


def test_a_token_path_without_a_token_is_one_line(no_auth, monkeypatch):
    """Ray would abort the process on it in token mode."""
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(no_auth / "missing"))
    with pytest.raises(ClusterError, match="RAY_AUTH_TOKEN_PATH=.*missing holds no token"):
        raycluster.token_source()


@pytest.mark.parametrize(
    "verdict, mode",
    [
        (raycluster.PROBE_TOKEN_WORKS, "token"),
        (raycluster.PROBE_NO_TOKEN_AUTH, "disabled"),
        (None, "token"),  # no verdict: Ray's own rule for a cluster it starts
    ],
    ids=["token-cluster", "open-cluster", "no-verdict"],
)
def test_a_token_at_hand_is_used_where_the_cluster_asks_for_one(
    no_auth, monkeypatch, verdict, mode
):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    probed = []
    monkeypatch.setattr(raycluster, "probe", lambda address: probed.append(address) or verdict)
    access = raycluster.prepare_join("10.0.0.1:6379", ray_imported=False)
    assert access == raycluster.ClusterAccess("10.0.0.1:6379", "RAY_AUTH_TOKEN", mode)
    assert os.environ["RAY_AUTH_MODE"] == mode  # inherited by what this process starts
    assert raycluster.prepare_join("10.0.0.1:6379") is access and probed == ["10.0.0.1:6379"]


def test_a_refused_token_is_one_line(no_auth, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")
    monkeypatch.setattr(raycluster, "probe", lambda address: raycluster.PROBE_TOKEN_REFUSED)
    with pytest.raises(ClusterError, match="refused the token from RAY_AUTH_TOKEN: set RAY_AUTH"):
        raycluster.prepare_join("10.0.0.1:6379", ray_imported=False)


@pytest.mark.parametrize("case", ["mode-set", "no-token", "ray-imported", "no-address"])
def test_no_probe_where_nothing_is_to_decide(no_auth, monkeypatch, case):
    monkeypatch.setattr(raycluster, "probe", lambda address: pytest.fail("probed"))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    address = "10.0.0.1:6379"
    if case == "mode-set":
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    elif case == "no-token":
        monkeypatch.delenv("RAY_AUTH_TOKEN")
    elif case == "no-address":
        address = None
    access = raycluster.prepare_join(address, ray_imported=case == "ray-imported")
    if case == "no-address":
        assert access is None
    else:
        assert access.mode == os.environ.get("RAY_AUTH_MODE")  # as it was


@pytest.mark.parametrize(
    "mode, source, expected",
    [
        ("token", "RAY_AUTH_TOKEN", "refused the token from RAY_AUTH_TOKEN: set RAY_AUTH_TOKEN"),
        ("token", None, "asks for a token and none was found: set RAY_AUTH_TOKEN"),
        ("disabled", "~/.ray/auth_token", "but RAY_AUTH_MODE=disabled: set RAY_AUTH_MODE=token"),
        (None, None, "asks for a token and none was found: set RAY_AUTH_TOKEN"),
        (None, "~/.ray/auth_token", "export RAY_AUTH_MODE=token before Python imports Ray"),
    ],
)
def test_an_auth_failure_names_the_variable_to_set(mode, source, expected):
    access = raycluster.ClusterAccess("h:1", source, mode)
    message = str(raycluster.auth_failure(access))
    assert message.startswith("the Ray cluster at h:1 ") and expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "address, parsed",
    [
        ("10.0.0.1:6379", ("10.0.0.1", 6379)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
        ("ray://head:10001", None),
        ("head:port", None),
    ],
)
def test_addresses_that_are_checked_before_joining(address, parsed):
    assert raycluster.host_port(address) == parsed


def test_the_search_command_decides_before_ray_is_imported():
    """Ray reads RAY_AUTH_MODE once, when it is imported."""
    code = "import sys, orchestrator.cli, orchestrator.raycluster; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_an_unreachable_address_is_one_line(monkeypatch):
    monkeypatch.setattr(raycluster, "_PREPARED", {})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        result = CliRunner().invoke(main, ["search", "--address", address, "--data", "x.csv"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: cannot reach a Ray cluster at {address}: connection refused; set --address "
        "or RAY_ADDRESS to the address that `ray start --head` printed"
    ]


def test_mlflow_run_id_leaves_the_environment_before_ray_starts(fake_init, monkeypatch):
    """Ray's processes inherit the driver's environment: a worker that inherited MLFLOW_RUN_ID
    would log every trial into that run. The tracker takes it back once."""
    seen = []
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(os.environ.get("MLFLOW_RUN_ID")))
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc123")
    ray_adapter.ensure_ray()
    assert seen == [None]
    assert outer_run.take_outer_run_id() == "abc123"
    assert outer_run.take_outer_run_id() is None


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def trial_started(self, trial_id, overrides):
        self.events.append(("start", trial_id, overrides))

    def trial_result(self, trial_id, payload):
        self.events.append(("result", trial_id, payload))

    def trial_completed(self, trial_id):
        self.events.append(("complete", trial_id))

    def trial_failed(self, trial_id, error):
        self.events.append(("error", trial_id, error))

    def close(self):
        self.events.append(("close",))


def test_trial_events_reach_the_listener_as_plain_values(tmp_path: Path):
    listener = Recorder()
    trial = SimpleNamespace(trial_id="t1", config={"training.optimizer.lr": 0.01})
    failed = SimpleNamespace(
        trial_id="t2",
        config={},
        pickled_error_file=str(tmp_path / "missing.pkl"),
        error_file=str(tmp_path / "error.txt"),
    )
    Path(failed.error_file).write_text("Failure # 1\nTraceback ...\nValueError: boom\n")
    with TrialEvents(listener) as events:
        assert pickle.loads(pickle.dumps(events)) is events  # what Tuner.restore gets back
        events.on_trial_start(0, [], trial)
        kept = {"epoch": 1, RESULT_KEY: {"epochs": [(1, {"val_accuracy": 0.5})]}}
        events.on_trial_result(0, [], trial, dict(kept))  # Tune hands callbacks a copy
        assert kept[RESULT_KEY] == {}  # the result Tune keeps loses the payload
        events.on_trial_result(0, [], trial, {"epoch": 2})  # no payload: nothing to hand on
        events.on_trial_complete(0, [], trial)
        events.on_trial_error(0, [], failed)
    assert not isinstance(_running_events(), TrialEvents)
    assert listener.events == [
        ("start", "t1", {"training.optimizer.lr": 0.01}),
        ("result", "t1", {"epochs": [(1, {"val_accuracy": 0.5})]}),
        ("complete", "t1"),
        ("error", "t2", "ValueError: boom"),
        ("close",),
    ]
