"""Imports a command-line search never needs, refused before anything asks for them.

MLflow imports IPython (~0.7 s of CPU) when a run starts and when a model is logged, only to ask
``IPython.get_ipython()`` whether it runs in a notebook, and treats an ImportError as "no". The
``automl`` command never runs in a notebook, and its start-up is CPU-bound (the driver, Ray's
agents and the trial workers all import at once), so :func:`block_notebook_probes` makes IPython
import there as if it were not installed. The library itself (``run_search`` called from a
notebook) is untouched: only the console script calls it, and the trial workers' preload
(:mod:`orchestrator.workerstart`: Ray Tune's ``Trainable.__init__`` imports IPython to switch
its notebook output off). ``AUTOML_LEAN_IMPORTS=0`` turns it off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

LEAN_IMPORTS_ENV = "AUTOML_LEAN_IMPORTS"
BLOCKED = ("IPython",)


class NotebookBlocker:
    """A meta-path finder under which :data:`BLOCKED` packages import as if not installed.

    A finder, not ``None`` in ``sys.modules``: Ray takes any name present there for a loaded
    IPython (and then fails importing it).
    """

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".", 1)[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def block_notebook_probes() -> bool:
    """Install :class:`NotebookBlocker` unless IPython is already loaded (or the variable says
    not to); returns whether it is installed."""
    if os.environ.get(LEAN_IMPORTS_ENV, "1") == "0":
        return False
    if any(name in sys.modules for name in BLOCKED):
        return False
    if not any(isinstance(finder, NotebookBlocker) for finder in sys.meta_path):
        sys.meta_path.insert(0, NotebookBlocker())
    return True
