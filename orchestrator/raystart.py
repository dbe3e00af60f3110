"""Starting (or joining) Ray, with trial workers that import the heavy modules while we wait.

A Ray worker that hosts a trial first has to import torch, scikit-learn, pandas, MLflow and this
project: about 8 s of CPU per worker on a small machine, paid by every search before its first
trial starts. A local Ray started here tells the raylet to import those modules in the workers it
prestarts (one per CPU) as soon as it starts them, so the imports run while the driver is still
importing, preparing the data and creating the MLflow parent run, and Tune's trial actors land on
workers that are ready. Light on imports itself: ``automl search`` calls it before anything heavy.
"""

from __future__ import annotations

import os
from typing import Any

# What a trial worker needs: the trainable (torch, data, models), the MLflow trial tracker, and
# torch._dynamo, which torch.optim imports on the first optimizer (~2 s).
PRELOAD_MODULES = ("orchestrator.trial", "orchestrator.tracking", "torch._dynamo")
OUTER_RUN_ENV = "MLFLOW_RUN_ID"

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


def ensure_ray(
    address: str | None = None, num_cpus: int | None = None, preload: bool = True
) -> None:
    """Start Ray embedded on this machine, or join ``address`` / ``RAY_ADDRESS``.

    ``preload`` (a local start only) has the prestarted workers import :data:`PRELOAD_MODULES`;
    leave it off when the trials will not use most workers (e.g. one trial on every CPU);
    ``AUTOML_PRELOAD_WORKERS=0`` turns it off everywhere.
    A cluster that is joined keeps its own settings: start it with
    ``RAY_preload_python_modules=orchestrator.trial,orchestrator.tracking`` for the same effect.
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
        if preload and os.environ.get("AUTOML_PRELOAD_WORKERS", "1") != "0":
            kwargs["_system_config"] = {"preload_python_modules": list(PRELOAD_MODULES)}
    ray.init(address=address, **kwargs)
