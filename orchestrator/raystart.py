"""Starting (or joining) Ray while the driver imports what the search needs.

``ray.init`` spends seconds waiting for the GCS and the raylet to come up, and ``automl search``
then spends seconds more importing torch, scikit-learn, pandas, MLflow and, unless the refit trains
a stacked model, torch._dynamo (which torch.optim's step imports). :func:`start_ray_and_import`
does the imports in a thread while the main thread waits on ``ray.init``. Light on imports
itself: the command line calls it before anything heavy.

The trial workers have the same problem: each imports torch, ray.tune, pandas and scikit-learn
before its first trial. A local Ray prestarts one idle worker per CPU at ``ray.init``, which
imports them at once (``preload_python_modules``), and :func:`reuse_prestarted_workers` makes
Tune's trial actors land in those workers instead of new processes, so the imports overlap
the driver's own start-up, data preparation and Tune set-up.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from orchestrator.tunehooks import prepare_worker_env, reuse_prestarted_workers
from orchestrator.warmup import SEARCH_MODULES, UNSTACKED_MODULES, import_in_background

# What a trial worker needs: the trainable (torch, ray.tune, data, models), imported with the
# garbage collector paused (orchestrator.workerstart). Trials never call MLflow (the driver's
# writer logs their runs), so workers do not import it.
PRELOAD_MODULES = ("orchestrator.workerstart",)
OUTER_RUN_ENV = "MLFLOW_RUN_ID"
NO_PRESTART = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}
# Ray's worker pool keeps as many idle workers as there are free CPUs and kills the rest once
# they have been idle this long (1 s by default). Tune reserves the CPUs (placement groups) a
# moment before its actors ask for workers, so a kill that falls in between took the preloaded
# workers away and the trials waited for new processes (~6 s; 6 of 20 searches here).
IDLE_WORKER_KEEP_MS = 600_000
PRESTART_ENV = "AUTOML_PRESTART_WORKERS"
# A local node started for one search runs without the three Ray processes that serve no one
# there: the autoscaler monitor (a single local node never scales), the log monitor (which
# forwards workers' output to the driver: log_to_driver is off) and the dashboard's head (for
# Ray's job and state APIs; include_dashboard=False already leaves out its web UI). Each is a
# Python process that imports Ray (~0.9 s of CPU apiece, on a machine whose start-up is
# CPU-bound). "1" keeps them.
MONITORS_ENV = "AUTOML_RAY_MONITORS"
LEAN_NODE = {"no_monitor": True, "include_log_monitor": False}
_outer_run: dict[str, str | None] = {}


def stash_outer_run_id() -> None:
    """Move ``MLFLOW_RUN_ID`` (set by ``mlflow run``) out of the environment before Ray starts.

    Ray processes inherit the driver's environment; a worker that inherited the variable would
    log every trial into that one run. The search tracker takes it back with
    :func:`take_outer_run_id` and makes that run the parent of the search.
    """
    popped = os.environ.pop(OUTER_RUN_ENV, None)
    if popped:
        _outer_run["id"] = popped


def take_outer_run_id() -> str | None:
    """The ``mlflow run`` run id, from the environment or the stash; it is used once."""
    stash_outer_run_id()
    return _outer_run.pop("id", None)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray embedded on this machine, or join ``address`` / ``RAY_ADDRESS``.

    A local start prestarts one idle worker per CPU that imports :data:`PRELOAD_MODULES` at
    once, while the driver imports, prepares the data and sets up Tune, and makes Tune's trial
    actors run in those workers (:func:`reuse_prestarted_workers`). ``AUTOML_PRESTART_WORKERS=0``
    starts no idle workers instead, and every trial actor starts a process of its own. A
    cluster that is joined keeps its own settings (start it with
    ``RAY_preload_python_modules=orchestrator.workerstart`` for the preloading).
    """
    import ray

    stash_outer_run_id()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "configure_logging": False,
        "log_to_driver": False,
    }
    if address is None:
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        if os.environ.get(PRESTART_ENV, "1") == "0":
            kwargs["_system_config"] = NO_PRESTART
        else:
            kwargs["_system_config"] = {
                "preload_python_modules": list(PRELOAD_MODULES),
                "idle_worker_killing_time_threshold_ms": IDLE_WORKER_KEEP_MS,
            }
            prepare_worker_env()
    lean = address is None and os.environ.get(MONITORS_ENV, "0") != "1"
    with _lean_node() if lean else contextlib.nullcontext():
        ray.init(address=address, **kwargs)
    if address is None and "preload_python_modules" in kwargs["_system_config"]:
        reuse_prestarted_workers()


@contextlib.contextmanager
def _lean_node() -> Iterator[None]:
    """While ``ray.init`` starts a local node: :data:`LEAN_NODE` as the node's defaults, and no
    dashboard process.

    ``ray.init`` takes no such arguments (``ray start`` has ``--no-monitor``), so its parameter
    class is swapped for the call; a Ray whose class lacks them starts as it always does.
    ``include_dashboard=False`` still starts the dashboard's head process (with only its
    usage-statistics module) and ``ray.init`` waits for it to register (~1 s, before the raylet
    and so the workers start); nothing a search does talks to it (it serves Ray's job and state
    APIs), so the node's step that starts it is skipped for the call.
    """
    try:
        from ray._private import node, parameter

        base = parameter.RayParams
        known = inspect.signature(base.__init__).parameters
        start_api_server = node.Node.start_api_server
    except Exception:  # Ray's internals moved: start the node as Ray does
        yield
        return
    if not all(k in known for k in LEAN_NODE):
        yield
        return

    class LeanParams(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**LEAN_NODE, **kwargs})  # ray.init sets neither

    def no_api_server(self: Any, **_: Any) -> None:
        self._webui_url = None  # what a node that joins without a dashboard holds

    parameter.RayParams = LeanParams
    node.Node.start_api_server = no_api_server
    try:
        yield
    finally:
        parameter.RayParams = base
        node.Node.start_api_server = start_api_server


_stopping: list[threading.Thread] = []  # stop_ray_in_background's thread


def stop_ray_in_background() -> threading.Thread:
    """:func:`stop_ray` in a thread, for a command whose trials are over while it still refits
    and logs in the driver (nothing after the trials uses Ray): stopping Ray's processes, ~0.4 s
    of mostly waiting, then overlaps that work instead of following it. :func:`stop_ray` waits
    for this thread."""
    thread = threading.Thread(target=_stop_ray, name="automl-ray-stop", daemon=True)
    _stopping.append(thread)
    thread.start()
    return thread


def stop_ray() -> None:
    """Stop Ray (:func:`_stop_ray`) once a stop begun in the background has ended."""
    while _stopping:
        _stopping.pop().join()
    _stop_ray()


def _stop_ray() -> None:
    """``ray.shutdown()`` without the ~1.5 s that Ray's own exit hook spends waiting.

    At interpreter exit Ray sleeps 0.5 s so that workers' log lines reach the driver (ours are
    not forwarded: ``log_to_driver=False``), then stops its processes one after another. The
    autoscaler monitor of a local node gets its SIGTERM only after the GCS is down; its handler
    then blocks trying to report to the GCS until Ray kills it a second later (measured: 1.01 s
    of a 1.36 s shutdown). The monitor keeps no state for a single local node, so it is killed
    first, which is how Ray's shutdown ends it anyway, and the rest stops as Ray stops it.
    """
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    with contextlib.suppress(Exception):  # Ray's internals: any surprise leaves the plain path
        from ray._private import ray_constants, worker

        node = worker._global_node  # holds processes only where this process started Ray
        for info in node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, ()):
            info.process.kill()
            info.process.wait(1)
    ray.shutdown()


def start_ray_and_import(address: str | None = None, stacked: bool = True) -> None:
    """:func:`ensure_ray`, with the driver's heavy imports overlapping its start-up.

    MLflow is not among them: the search imports it, opens its store and starts its parent run
    in a thread once its trials are submitted (``tracking.parentstart``; in the driver's one
    GIL, MLflow's imports beside the search's own set-up slowed both). ``stacked``: the refit
    will train as a stacked model (no torch.optim step, so no torch._dynamo to import).
    """
    import ray

    if ray.is_initialized():
        return
    search = import_in_background(SEARCH_MODULES + (() if stacked else UNSTACKED_MODULES))
    ensure_ray(address)
    search.join()
