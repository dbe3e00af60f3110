"""Python's cyclic garbage collector, paused while a process imports its libraries.

Importing torch, Ray Tune, scikit-learn, pandas and MLflow creates ~700,000 objects that live
as long as the process, and the collector's full passes while they are imported (6 in the
driver's imports, each walking every object made so far) cost ~20% of the imports' CPU. So the
``automl`` command pauses the collector while its search starts Ray and imports the search's
modules, and again while a thread imports MLflow and starts the search's parent run
(``tracking.parentstart``); a Ray worker pauses it while it preloads the trial's modules
(:mod:`orchestrator.workerstart`). Only a process that called :func:`allow` pauses (the console
script, a worker: not a notebook or a test runner that imports the package). Then
:func:`resume` moves everything alive to the permanent generation (``gc.freeze``), which later
passes skip (modules and their functions never become garbage), and collection goes on as
before for everything made after. Cycles made during the pause and unreachable at the freeze
stay in memory (an import makes few). ``AUTOML_GC_PAUSE=0`` leaves the collector alone.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

ENV = "AUTOML_GC_PAUSE"
_state = {"paused": False, "allowed": False}


def allow() -> None:
    """Let :func:`pause` act in this process (a process that runs one command, then ends)."""
    _state["allowed"] = True


def pause() -> bool:
    """Stop automatic collection (if allowed, not switched off and not already stopped); True
    if it did."""
    if not _state["allowed"] or os.environ.get(ENV, "1") == "0" or not gc.isenabled():
        return False
    gc.disable()
    _state["paused"] = True
    return True


def resume() -> None:
    """After :func:`pause`: freeze what is alive, then collect automatically again."""
    if not _state["paused"]:
        return
    _state["paused"] = False
    gc.freeze()
    gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """:func:`pause` for the block, then :func:`resume` if it did pause, whatever the block
    raised."""
    did = pause()
    try:
        yield
    finally:
        if did:
            resume()
