"""The Ray adapter: how the driver starts or joins Ray (its own wrapper logic, with ray.init
faked), and the TrialEvents callback that hands Tune's trial events to a listener."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray

from orchestrator import outer_run, ray_adapter
from orchestrator.ray_adapter import RESULT_KEY, TrialEvents, _running_events


@pytest.fixture
def fake_init(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
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
    assert kwargs["address"] == "127.0.0.1:6379" and "num_cpus" not in kwargs


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
