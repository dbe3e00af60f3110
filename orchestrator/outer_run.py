"""The run that ``mlflow run`` opened for this process, kept out of Ray's environment.

``mlflow run`` sets ``MLFLOW_RUN_ID``. Ray's processes inherit the driver's environment, and a
worker that inherited it would log every trial into that one run, so the variable leaves the
environment before Ray starts (:func:`stash_outer_run_id`) and the search's tracker takes it
back (:func:`take_outer_run_id`) to make that run the parent of the search. A leaf module: the
Ray adapter and the tracking layer both use it without importing each other.
"""

from __future__ import annotations

import os

OUTER_RUN_ENV = "MLFLOW_RUN_ID"
_outer_run: dict[str, str | None] = {}


def stash_outer_run_id() -> None:
    """Move ``MLFLOW_RUN_ID`` out of the environment (before Ray starts)."""
    popped = os.environ.pop(OUTER_RUN_ENV, None)
    if popped:
        _outer_run["id"] = popped


def take_outer_run_id() -> str | None:
    """The ``mlflow run`` run id, from the environment or the stash; it is used once."""
    stash_outer_run_id()
    return _outer_run.pop("id", None)
