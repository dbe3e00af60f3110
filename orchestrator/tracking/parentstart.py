"""A search's MLflow parent run, started in a thread while its first trials already run.

Importing MLflow and opening its store take the driver ~2.5 s of CPU, and the trials need
neither: they report to the driver, whose writer (``writer.TrialRunWriter``) queues what they
send until the parent run exists. So the search submits its trials first and this thread, after
any background imports of the driver (``orchestrator.raystart``), imports MLflow, opens the store,
starts the parent run and hands its ids to the writer. It starts once everything else the search
needs is done, when the first trial reports (``trials.OnFirstReport``): in the driver's one
GIL, MLflow's imports beside the search's own set-up, or Tune's start of the first trials,
slowed both. If the parent run cannot be started, the writer drops what
it queued, the search stops its trials (``failed`` is what its stopper asks) and ``result()``
raises the error that stopped it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.raystart import join_background_imports

if TYPE_CHECKING:
    from orchestrator.tracking.runs import SearchTracker
    from orchestrator.tracking.writer import TrialRunWriter


class ParentRunStart:
    """Runs ``start`` (which returns the started SearchTracker) in a daemon thread from
    :meth:`begin`, then ``then`` (failures ignored)."""

    def __init__(
        self,
        start: Callable[[], SearchTracker],
        writer: TrialRunWriter,
        then: Callable[[], object] | None = None,
    ) -> None:
        self._start, self._writer, self._then = start, writer, then
        self._tracker: SearchTracker | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="automl-parent-run", daemon=True)
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Start the thread (once; ``result()`` starts it too)."""
        with self._lock:
            if self._thread.ident is None:
                self._thread.start()

    def _run(self) -> None:
        try:
            join_background_imports()  # the same modules, never imported by two threads at once
            tracker = self._start()
        except BaseException as err:  # handed to the caller by result()
            self._error = err
            self._writer.attach_failed(err)
        else:
            self._tracker = tracker
            self._writer.attach(tracker.ids)
            if self._then is not None:  # what the writer will want soon (a figure warm-up)
                with contextlib.suppress(Exception):
                    self._then()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def result(self) -> SearchTracker:
        """The started tracker, once it is; raises what stopped it."""
        self.begin()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._tracker is not None
        return self._tracker
