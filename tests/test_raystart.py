"""How the driver starts Ray and warms up: the wrapper's own logic with Ray faked, and a real
local Ray whose prestarted, preloaded workers must be the ones Tune's trials run in."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
import ray

from orchestrator import raystart, tunehooks, warmup
from tests.e2e_helpers import script_result


@pytest.fixture
def fake_init(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    from ray._private import node, parameter

    ray_api_server = node.Node.start_api_server

    def init(**kwargs):  # notes the node parameters' defaults in force during the call
        lean = parameter.RayParams(num_cpus=1)
        kwargs["lean"] = {"no_monitor": lean.no_monitor, "log_monitor": lean.include_log_monitor}
        kwargs["api_server"] = node.Node.start_api_server is ray_api_server
        calls.append(kwargs)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.delenv(raystart.MONITORS_ENV, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(raystart.PRESTART_ENV, raising=False)
    adopted = []
    monkeypatch.setattr(raystart, "reuse_prestarted_workers", lambda: adopted.append(True))
    calls.append(adopted)
    return calls


def test_local_start_preloads_prestarted_workers_and_adopts_them(fake_init):
    adopted = fake_init.pop(0)
    raystart.ensure_ray(num_cpus=2)
    (kwargs,) = fake_init
    assert kwargs["_system_config"] == {
        "preload_python_modules": ["orchestrator.workerstart"],
        "idle_worker_killing_time_threshold_ms": raystart.IDLE_WORKER_KEEP_MS,
    }
    assert kwargs["num_cpus"] == 2 and kwargs["address"] is None
    assert kwargs["include_dashboard"] is False
    assert adopted == [True]
    # the local node starts without Ray's autoscaler monitor and log monitor, and only it
    assert kwargs["lean"] == {"no_monitor": True, "log_monitor": False}
    assert kwargs["api_server"] is False  # nor the dashboard's head process
    from ray._private import node, parameter

    assert parameter.RayParams(num_cpus=1).no_monitor is False  # all restored after the call
    assert node.Node.start_api_server.__qualname__ == "Node.start_api_server"
    # Tune's actor variables are set before ray.init, so that every worker inherits them
    # (our copy of Tune's defaults, read without importing ray.tune, must be Tune's own)
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS

    assert tunehooks.TUNE_DEFAULT_ENV == DEFAULT_ENV_VARS
    assert DEFAULT_ENV_VARS and all(os.environ.get(k) == v for k, v in DEFAULT_ENV_VARS.items())


def test_prestarting_can_be_switched_off(fake_init, monkeypatch):
    adopted = fake_init.pop(0)
    monkeypatch.setenv(raystart.PRESTART_ENV, "0")
    raystart.ensure_ray()
    assert fake_init[0]["_system_config"] == raystart.NO_PRESTART
    assert adopted == []


def test_joining_a_cluster_keeps_its_settings(fake_init):
    adopted = fake_init.pop(0)
    raystart.ensure_ray(address="ray://somewhere:10001")
    (kwargs,) = fake_init
    assert kwargs["address"] == "ray://somewhere:10001" and "_system_config" not in kwargs
    assert kwargs["lean"] == {"no_monitor": False, "log_monitor": None}  # Ray's own defaults
    assert kwargs["api_server"] is True
    assert adopted == []


def test_ray_monitors_can_be_kept(fake_init, monkeypatch):
    fake_init.pop(0)
    monkeypatch.setenv(raystart.MONITORS_ENV, "1")
    raystart.ensure_ray()
    assert fake_init[0]["lean"] == {"no_monitor": False, "log_monitor": None}
    assert fake_init[0]["api_server"] is True


# Runs in a fresh process (its own local Ray, started by ensure_ray as `automl search` does):
# the idle workers' process ids, then a 4-trial search's, then which actor class Tune gets
# once a variable Tune propagates differs from what the workers inherited. Before the search,
# every CPU is reserved for a while, as Tune's placement groups reserve them before its actors
# ask for workers: Ray's worker pool then wants no idle workers and, by default, kills those
# idle for over a second (the trials then waited ~6 s for new processes). At the end, stop_ray.
PRESTART_SCRIPT = r"""
import json, os, sys, time
import psutil
from orchestrator.raystart import ensure_ray
from orchestrator.search import run_search
from tests.conftest import tiny_config

def cmdline(proc):  # a process can exit between the listing and the reading
    try:
        return proc.cmdline()
    except psutil.Error:
        return []

ensure_ray(num_cpus=2)
deadline = time.time() + 120
while True:
    idle = {p.pid for p in psutil.Process().children(recursive=True)
            if cmdline(p)[:1] == ["ray::IDLE"]}
    if len(idle) >= 2 or time.time() > deadline:
        break
    time.sleep(0.2)
import ray
from ray.util.placement_group import placement_group, remove_placement_group
time.sleep(1.5)
group = placement_group([{"CPU": 2}])
ray.get(group.ready(), timeout=60)
time.sleep(1.0)  # five ticks of the pool's idle-worker timer
remove_placement_group(group)
config = tiny_config(**{"search.algorithm": "grid", "training.epochs": 2,
    "search.space": {"training.optimizer.lr": {"grid": [1e-3, 2e-3, 3e-3, 4e-3]}}})
from ray import tune

def loaded(pid, package):  # a compiled module of the package mapped into the process
    with open(f"/proc/{pid}/maps") as maps:
        return any(f"/site-packages/{package}/" in line for line in maps)

heavy = {}
class Maps(tune.Callback):  # read while the trial's worker is alive (it may exit at the end)
    def on_trial_result(self, iteration, trials, trial, result, **info):
        pid = result["pid"]
        heavy[pid] = [pkg for pkg in ("sklearn", "scipy", "torch") if loaded(pid, pkg)]

result = run_search(config, name="pre", storage=sys.argv[1], refit=False, callbacks=[Maps()])
trial_pids = sorted({t.metrics["pid"] for t in result.trials})

from ray.tune.execution.class_cache import _ActorClassCache
class Trainable:
    pass
same = _ActorClassCache().get(Trainable)._default_options.get("runtime_env")
os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # propagated by Tune, set after ray.init
changed = _ActorClassCache().get(Trainable)._default_options.get("runtime_env")


from orchestrator.raystart import stop_ray
started = psutil.Process().children(recursive=True)
monitors = [" ".join(cmdline(p)) for p in started
            if any(a.endswith(("/monitor.py", "/log_monitor.py", "/dashboard/dashboard.py"))
                   for a in cmdline(p))]
stop_ray()
_, alive = psutil.wait_procs(started, timeout=10)
alive = [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]
print("RESULT " + json.dumps({"idle": sorted(idle), "trials": trial_pids,
    "same": same, "changed": changed, "started": len(started), "alive": alive,
    "initialized": ray.is_initialized(), "monitors": monitors, "heavy": heavy}))
"""


@pytest.mark.timeout(300)
def test_trials_run_in_the_prestarted_preloaded_workers(tmp_path):
    found = json.loads(script_result(PRESTART_SCRIPT, str(tmp_path)))
    assert len(found["idle"]) == 2, found
    # every trial ran in one of the idle workers that Ray started (and preloaded) at ray.init
    assert found["trials"] and set(found["trials"]) <= set(found["idle"]), found
    # the folds were fitted in the driver: the trial workers loaded torch but no scikit-learn
    assert found["heavy"] and all(v == ["torch"] for v in found["heavy"].values()), found
    assert found["same"] is None  # no runtime env of its own: the idle workers fit
    # a variable Tune propagates now differs from the workers' own: Tune's runtime env is kept
    assert found["changed"]["env_vars"]["RAY_CHDIR_TO_TRIAL_DIR"] == "0"
    # stop_ray (what `automl` runs before it exits) leaves none of Ray's processes behind
    assert found["started"] >= 4 and found["alive"] == [] and not found["initialized"], found
    # the lean local node: no autoscaler monitor, log monitor or dashboard head
    assert found["monitors"] == []


def test_background_warm_up_opens_the_tracking_store(tmp_path):
    """The thread imports the modules and leaves MLflow's store for the URI built and cached,
    so the search's own client does not build it again."""
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    from orchestrator.config import TrackingConfig

    cache = TrackingStoreRegistry._get_store_with_resolved_uri
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stores = cache.cache_info().currsize
    tracking = TrackingConfig(tracking_uri=uri, trial_figures="none")
    warmup.import_in_background(("json",), tracking).join(timeout=120)
    assert cache.cache_info().currsize == stores + 1  # this URI's store, built by the thread
    assert "json" in sys.modules
    assert (tmp_path / "mlflow.db").exists()  # created and migrated by the warm-up
    MlflowClient(uri).search_experiments()
    assert cache.cache_info().currsize == stores + 1  # the client reused it


def test_tune_callback_telemetry_counts_by_name_as_ray_does():
    from ray.air._internal import usage
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune import Callback
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback

    from orchestrator.trials import TrialPrinter

    class Custom(LoggerCallback):
        pass

    tunehooks.count_callbacks_by_name()
    tunehooks.count_callbacks_by_name()  # a second call keeps the first replacement
    counted = usage._count_callbacks
    assert counted.by_name and not getattr(counted.original, "by_name", False)
    callbacks = [
        TrialPrinter(lambda trial: None),
        Custom(),
        CSVLoggerCallback(),
        JsonLoggerCallback(),
        MLflowLoggerCallback(tracking_uri="file:///nowhere"),
        Callback(),
        "not a callback",
    ]
    ours = dict(counted(callbacks))
    assert ours == dict(counted.original(callbacks))
    assert ours == {
        "CustomCallback": 2,
        "CustomLoggerCallback": 1,
        "CSVLoggerCallback": 1,
        "JsonLoggerCallback": 1,
        "MLflowLoggerCallback": 1,
    }
    assert dict(counted(None)) == {}


def test_adopting_the_workers_waits_for_the_background_imports(ray_session, tmp_path, monkeypatch):
    """reuse_prestarted_workers imports ray.tune's modules on its own thread only once the
    background imports are done: two threads importing one module graph can hand one of them
    a partially initialised module (an ImportError)."""
    import threading

    (tmp_path / "slow_automl_module.py").write_text(
        "import threading\nGO = threading.Event()\nimport builtins\nbuiltins._automl_go = GO\n"
        "GO.wait(30)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    importing = warmup.import_in_background(("slow_automl_module",))
    adopted = threading.Event()
    threading.Thread(
        target=lambda: (tunehooks.reuse_prestarted_workers(), adopted.set()), daemon=True
    ).start()
    while not hasattr(builtins, "_automl_go"):
        threading.Event().wait(0.01)
    assert not adopted.wait(0.5)  # still importing: the adoption waits
    builtins._automl_go.set()
    importing.join(30)
    assert adopted.wait(30)
    del builtins._automl_go


def _first_fast_trainable(folder: str, slow_s: float):
    from ray import tune

    class FirstFast(tune.Trainable):
        def setup(self, config):
            try:
                os.close(os.open(os.path.join(folder, "first"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:  # not the first actor: a slow start, then a marker
                time.sleep(slow_s)
                open(os.path.join(folder, f"slow-ready-{os.getpid()}"), "w").close()

        def step(self):
            return {"score": 1.0, "done": True}

        def reset_config(self, new_config):
            return True

        def save_checkpoint(self, checkpoint_dir):
            return None

        def load_checkpoint(self, checkpoint):
            pass

    return FirstFast


def test_actors_dropped_before_they_started_are_killed_at_the_end(ray_session, tmp_path):
    """Two trials, two actors asked for; the first actor's trial ends at once and the second
    trial takes that actor, so Tune drops the second actor while it is still starting. At the
    end Tune waited (up to 5 s) for it to start only to stop it; it is now killed, and its
    start never completes (without kill_unready_actors_at_end its marker appears)."""
    from ray import tune

    tunehooks.kill_unready_actors_at_end()
    tunehooks.kill_unready_actors_at_end()  # a second call keeps the first replacement
    from ray.tune.execution.tune_controller import TuneController

    assert TuneController._cleanup_trials.kills_unready
    assert not getattr(TuneController._cleanup_trials.original, "kills_unready", False)

    slow_s = 2.0
    tuner = tune.Tuner(
        _first_fast_trainable(str(tmp_path), slow_s),
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray_results"), verbose=0),
    )
    results = tuner.fit()

    assert len(results) == 2 and not results.errors
    assert [r.metrics["score"] for r in results] == [1.0, 1.0]
    time.sleep(slow_s + 1.5)  # the dropped actor would have finished starting by now
    assert (tmp_path / "first").exists()
    assert list(tmp_path.glob("slow-ready-*")) == []


# A search told that Ray has no use after it (the command line) stops Ray in a thread once its
# trials are over, while the driver refits; stop_ray then waits for that thread.
STOP_AFTER_TRIALS_SCRIPT = r"""
import json, sys
import psutil, ray
from orchestrator import raystart, search
from tests.conftest import tiny_config

seen = {}
real_refit = search.refit_and_test
def refit(*args, **kwargs):
    seen["stop_threads"] = [t.name for t in raystart._stopping]
    out = real_refit(*args, **kwargs)
    for t in raystart._stopping:
        t.join(60)
    seen["initialized_after_refit"] = ray.is_initialized()
    return out
search.refit_and_test = refit

raystart.ensure_ray(num_cpus=2)
ray_processes = psutil.Process().children(recursive=True)
config = tiny_config(**{"search.algorithm": "grid", "training.epochs": 2,
    "search.space": {"training.optimizer.lr": {"grid": [1e-3, 3e-3]}}})
result = search.run_search(config, name="stop", storage=sys.argv[1],
                           stop_ray_after_trials=True)
raystart.stop_ray()
_, alive = psutil.wait_procs(ray_processes, timeout=10)
alive = [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]
print("RESULT " + json.dumps({**seen, "trials": len(result.trials),
    "test": result.refit.test_metrics if result.refit else None,
    "left": len(raystart._stopping), "ray_processes": len(ray_processes), "alive": alive}))
"""


@pytest.mark.timeout(300)
def test_a_search_stops_ray_beside_its_refit(tmp_path):
    found = json.loads(script_result(STOP_AFTER_TRIALS_SCRIPT, str(tmp_path)))
    assert found["trials"] == 2
    assert found["stop_threads"] == ["automl-ray-stop"]  # begun before the refit started
    assert found["initialized_after_refit"] is False  # it stopped Ray while the refit ran
    assert found["test"] and 0.0 <= found["test"]["accuracy"] <= 1.0  # the refit is whole
    assert found["left"] == 0  # stop_ray waited for the thread
    assert found["ray_processes"] >= 3 and found["alive"] == [], found
