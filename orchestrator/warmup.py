"""The driver's imports, done in a background thread while it waits on something else.

``automl search`` imports torch, scikit-learn, pandas and ray.tune (~5 s on 2 cores) while
``ray.init`` mostly waits for the GCS and the raylet (``raystart.start_ray_and_import``), and a
benchmark warms MLflow up before it times a search. :func:`join_background_imports` waits for
them: code that imports the same modules on another thread joins first (two threads importing
one module graph can hand one a partially initialised module).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

# What the search driver needs besides those: the search itself, then its MLflow runs and the
# refit's model logging (imported while the first trials run).
SEARCH_MODULES = ("orchestrator.search",)
TRACKING_MODULES = (
    "orchestrator.tracking.runs",
    "orchestrator.tracking.trialrun",
    "orchestrator.tracking.registry",
    "mlflow.pyfunc",
)
DRIVER_MODULES = SEARCH_MODULES + TRACKING_MODULES
# torch.optim's step imports torch._dynamo (~2.5 s); only families trained one model at a time
# take that step (stacked FNNs use models/stacked_optim.py), so only they import it meanwhile.
UNSTACKED_MODULES = ("torch._dynamo",)

_background: list[threading.Thread] = []  # import_in_background's threads not yet joined


def import_in_background(
    modules: tuple[str, ...] = DRIVER_MODULES,
    tracking: Any = None,
) -> threading.Thread:
    """Import ``modules`` in a daemon thread; with ``tracking`` (the search's tracking settings)
    enabled, then open its MLflow store and, where trials draw figures, draw one throw-away set
    (:func:`plots.warm_up`: the font and glyphs the first trial's figures would pay for).
    :func:`join_background_imports` waits for every such thread.

    Anything that fails here is retried, and raises, where the code that needs it runs. MLflow
    caches a store per URI, so the search's own client finds it open (for SQLite that is ~1.5 s
    of SQLAlchemy imports and the schema check).
    """
    enabled = tracking is not None and tracking.enabled

    def work() -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        if enabled:
            with contextlib.suppress(Exception):
                from orchestrator.tracking.stores import tracking_client

                tracking_client(tracking.tracking_uri)  # builds the store, MLflow caches it
        if enabled and tracking.trial_figures != "none":
            with contextlib.suppress(Exception):
                from orchestrator.plots import warm_up

                warm_up()

    thread = threading.Thread(target=work, name="automl-imports", daemon=True)
    _background.append(thread)
    thread.start()
    return thread


def join_background_imports() -> None:
    """Wait for every thread :func:`import_in_background` started."""
    for thread in list(_background):
        thread.join()
    _background[:] = [t for t in _background if t.is_alive()]
