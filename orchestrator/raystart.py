"""Starting (or joining) Ray while the driver imports what the search needs.

``ray.init`` spends seconds waiting for the GCS and the raylet to come up, and ``automl search``
then spends seconds more importing torch, scikit-learn, pandas, MLflow and, unless the refit trains
a stacked model, torch._dynamo (which torch.optim's step imports). :func:`start_ray_and_import`
does the imports in a thread while the main thread waits on ``ray.init``. Light on imports
itself: the command line calls it before anything heavy.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from typing import Any

# What a trial worker needs: the trainable (torch, data, models) and the MLflow trial tracker.
PRELOAD_MODULES = ("orchestrator.trial", "orchestrator.tracking")
# What the search driver needs besides those: the search itself and the refit's model logging.
DRIVER_MODULES = ("orchestrator.search", "orchestrator.tracking", "mlflow.pyfunc")
# torch.optim's step imports torch._dynamo (~2.5 s); only families trained one model at a time
# take that step (stacked FNNs use models/stacked_optim.py), so only they import it meanwhile.
UNSTACKED_MODULES = ("torch._dynamo",)
OUTER_RUN_ENV = "MLFLOW_RUN_ID"
NO_PRESTART = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}

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

    ``AUTOML_PRELOAD_WORKERS=1`` (a local start only) has the prestarted workers import
    :data:`PRELOAD_MODULES` at once. Off by default: on a 2-core machine the workers' imports
    then compete with the driver's for the same cores, and B1 measured 48-50 s with it against
    43-45 s without; it pays where idle cores wait for the driver. A cluster that is joined keeps
    its own settings: start it with ``RAY_preload_python_modules=...`` for the same effect.
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
        if os.environ.get("AUTOML_PRELOAD_WORKERS") == "1":
            kwargs["_system_config"] = {"preload_python_modules": list(PRELOAD_MODULES)}
        else:
            # Ray prestarts one idle worker per CPU, but Tune's trial actors start processes of
            # their own: the idle ones only take CPU from the start-up (ray.init ~1 s and a
            # digits search ~1.8 s faster without them, measured side by side on 2 cores).
            kwargs["_system_config"] = NO_PRESTART
    ray.init(address=address, **kwargs)


def import_in_background(
    modules: tuple[str, ...] = DRIVER_MODULES, tracking_uri: str | None = None
) -> threading.Thread:
    """Import ``modules`` in a daemon thread, then open the MLflow store at ``tracking_uri``.

    Anything that fails here is retried, and raises, in the main thread when the code that
    needs it runs. MLflow caches a store per URI, so the search's own client finds it open (for
    SQLite that is ~1.5 s of SQLAlchemy imports and the schema check).
    """

    def work() -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        if tracking_uri is not None:
            with contextlib.suppress(Exception):
                from mlflow import MlflowClient

                from orchestrator.tracking.stores import resolve_tracking_uri

                MlflowClient(resolve_tracking_uri(tracking_uri))  # builds and caches the store

    thread = threading.Thread(target=work, name="automl-imports", daemon=True)
    thread.start()
    return thread


def start_ray_and_import(
    address: str | None = None, stacked: bool = True, tracking_uri: str | None = None
) -> None:
    """:func:`ensure_ray`, with the driver's heavy imports overlapping its start-up.

    ``stacked``: the refit will train as a stacked model (no torch.optim step, so no
    torch._dynamo to import). ``tracking_uri``: the store the search will log to ("" for
    MLflow's default), opened meanwhile; None when tracking is off.
    """
    import ray

    if ray.is_initialized():
        return
    modules = DRIVER_MODULES + (() if stacked else UNSTACKED_MODULES)
    thread = import_in_background(modules, tracking_uri)
    ensure_ray(address)
    thread.join()
