"""What ``automl search`` and ``automl train`` show while they run.

:func:`search_view` and :func:`train_view` pick one of three views (:func:`choose_mode`):

- ``live``, where standard output is a terminal: one compact view drawn by rich on stdout and
  redrawn by rich's own thread at most :data:`REFRESH_PER_SECOND` times a second, never once
  per event. Leaving the view's ``with`` block stops it, however it is left: the result, an
  error, a ``KeyboardInterrupt``. What the command prints meanwhile goes above it.
- ``plain``, where it is not (CI, a pipe): a line per finished trial (``report.print_trial``),
  and at most a line per epoch, :data:`PLAIN_EPOCH_INTERVAL_S` apart (the first and the last
  always; ``automl train``'s view is in ``orchestrator.trainprogress``).
- ``quiet`` (``--quiet``): nothing; the command prints its errors and its final line only.
  Meanwhile what Python writes to stdout and stderr goes nowhere (Ray Tune prints its
  experiment's box whatever its verbosity, MLflow says it registered a model) and logging
  below ERROR is off; the errors the command reports come after.

A view reads only what the driver already has. The search's is the ``on_trial`` of
``run_search``: ``ray_adapter.TrialPrinter`` hands it Tune's trial events on the driver. The
training's is the ``on_epoch`` of ``run_training``: the fold-mean metrics that every epoch of
``cross_validate`` yields anyway. An event sets a few values under a lock and returns; the
drawing happens in rich's thread, so no trial and no epoch waits for the terminal. The live view
draws on stdout, where the plain lines and the final tables go; errors go to stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click
from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator import jsonout, report
from orchestrator.config import Config

if TYPE_CHECKING:  # no Ray for automl train: trials imports the space, which imports Ray
    from orchestrator.trials import TrialSummary

REFRESH_PER_SECOND = 4
PLAIN_EPOCH_INTERVAL_S = 1.0
BAR_WIDTH = 24

Clock = Callable[[], float]


def choose_mode(quiet: bool, console: Console | None = None, stream: IO[str] | None = None) -> str:
    """``quiet``; ``live`` on a terminal (``console``'s, else ``stream``, stdout by default);
    else ``plain``. A terminal that cannot move its cursor (``TERM=dumb``) gets plain lines."""
    if quiet:
        return "quiet"
    if console is not None:
        return "live" if console.is_terminal and not console.is_dumb_terminal else "plain"
    stream = sys.stdout if stream is None else stream
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        terminal = False
    dumb = os.environ.get("TERM", "").lower() in ("dumb", "unknown")
    return "live" if terminal and not dumb else "plain"


def duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    hours, rest = divmod(max(0, int(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def resolve_metric(config: Config, classification: bool) -> tuple[str, str]:
    """The search metric and its direction (max or min), as ``search.with_objectives`` fills
    them in: the first of two ``search.metrics``, else ``search.metric``, else the task's
    default; the task told by the metrics a trial or an epoch has."""
    from orchestrator.crossval import main_metric, metric_mode

    search = config.search
    task = "classification" if classification else "regression"
    metric = search.metrics[0] if search.metrics else search.metric or main_metric(task)
    return metric, (search.modes or [None])[0] or search.mode or metric_mode(metric)


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and value == value


class View:
    """What both views share: their mode, a clock, a lock around their state, and, on a
    terminal, the rich ``Live`` that draws :meth:`render` (in its own thread)."""

    def __init__(self, mode: str, console: Console | None, clock: Clock) -> None:
        self.mode = mode
        self.console = console
        self.clock = clock
        self.started = clock()
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.closed = False  # the block is left: the last drawing says what was done
        self.hushed: contextlib.ExitStack | None = None

    def __enter__(self) -> View:
        if self.mode == "quiet":
            self.hushed = contextlib.ExitStack()
            for redirect in (contextlib.redirect_stdout, contextlib.redirect_stderr):
                self.hushed.enter_context(redirect(_Discard()))
            logging.disable(logging.WARNING)
            self.hushed.callback(logging.disable, logging.NOTSET)
        if self.mode == "live":
            self.live = Live(
                console=self.console or Console(),
                get_renderable=self.render,
                refresh_per_second=REFRESH_PER_SECOND,
            )
            self.live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.closed = True
        if self.hushed is not None:
            hushed, self.hushed = self.hushed, None
            hushed.close()
        if self.live is not None:
            live, self.live = self.live, None
            live.stop()  # its last drawing, the cursor back, stdout and stderr given back

    def render(self) -> RenderableType:
        """The view as it stands (rich's thread calls this)."""
        with self.lock:
            rows = self.rows(self.clock())
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        for label, content in rows:
            grid.add_row(label, content)
        return grid

    def rows(self, now: float) -> list[tuple[str, RenderableType]]:
        raise NotImplementedError

    print_tables: Callable[[Any], None]  # the command's tables (report.py)
    final_line: Callable[[Any], str]

    def conclude(self, result: Any, json_path: str | None = None) -> None:
        """The command's last words: its tables (not under quiet), the JSON file (``--json``),
        then the final line, the only one under quiet."""
        if self.mode != "quiet":
            self.print_tables(result)
        if json_path:
            written = jsonout.write_json(json_path, result.to_json())
            if self.mode != "quiet":
                click.echo(f"wrote {written}")
        click.echo(self.final_line(result))


class _Discard(io.TextIOBase):
    """Standard output and error under ``--quiet``."""

    def write(self, text: str) -> int:
        return len(text)


def text_line(text: str) -> Text:
    """One line of the view: cut short with an ellipsis rather than wrapped."""
    return Text(text, no_wrap=True, overflow="ellipsis")


def bar_and(done: int, total: int | None, text: str) -> RenderableType:
    """A progress bar of ``done`` out of ``total`` (pulsing when unknown) and ``text``."""
    line = Table.grid(padding=(0, 1))
    line.add_column(no_wrap=True)
    line.add_column(no_wrap=True, overflow="ellipsis")
    line.add_row(ProgressBar(total=total, completed=done, width=BAR_WIDTH), text_line(text))
    return line


class SearchView(View):
    """A search's view, the ``on_trial`` of ``run_search``. ``ray_adapter.TrialPrinter`` calls
    it with each ended trial's ``TrialSummary``, and :meth:`search_started` (Tune's count of
    trials), :meth:`search_resumed` (the trials a resumed search had ended),
    :meth:`trial_started`, :meth:`trial_result` (each report) and :meth:`search_ended`."""

    def __init__(self, config: Config, mode: str, console: Console | None, clock: Clock) -> None:
        super().__init__(mode, console, clock)
        self.config = config
        self.metric = ""  # the search metric without val_, once a trial has ended
        self.direction = "max"
        self.budget_s = config.search.time_budget_s
        epochs = config.training.epochs
        self.max_epochs = epochs if isinstance(epochs, int) else None
        self.total: int | None = None  # trials the search runs, once Tune has said
        self.before = 0  # trials a resumed search had ended before
        self.tuned = False  # Tune is done with the trials: the final model follows
        self.trials_started: float | None = None  # when Tune started (its budget's clock)
        self.running: dict[str, int] = {}  # trial id -> its latest epoch
        self.ended = {"TERMINATED": 0, "STOPPED": 0, "ERROR": 0}
        self.best: TrialSummary | None = None  # the best ended trial, as pick_best ranks
        self.best_key: tuple[bool, float] | None = None

    print_tables = staticmethod(report.print_search_result)
    final_line = staticmethod(report.search_line)

    def search_started(self, total: int | None) -> None:
        with self.lock:
            self.total = total if total and total > 0 else None
            self.trials_started = self.clock()

    def search_resumed(self, ended: list[TrialSummary]) -> None:
        """The trials a resumed search had ended: counted apart, and ranked."""
        with self.lock:
            self.before = len(ended)
            for trial in ended:
                self._rank(trial)

    def search_ended(self) -> None:
        with self.lock:
            self.tuned = True

    def trial_started(self, trial_id: str, overrides: dict[str, Any]) -> None:
        with self.lock:
            self.running.setdefault(trial_id, 0)

    def trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        epoch = result.get("epoch")
        if finite(epoch):
            with self.lock:
                if trial_id in self.running:
                    self.running[trial_id] = int(epoch)

    def __call__(self, trial: TrialSummary) -> None:
        """A trial ended: TERMINATED, STOPPED early or ERROR."""
        with self.lock:
            self.running.pop(trial.trial_id, None)
            self.ended[trial.status] = self.ended.get(trial.status, 0) + 1
            self._rank(trial)
        if self.mode == "plain":
            report.print_trial(trial)

    def _rank(self, trial: TrialSummary) -> None:
        """Keep ``trial`` if it is the best so far: trials that ran to their end first, then by
        the metric's mean over the folds (``trials.pick_best``'s order)."""
        if not self.metric and trial.cv:  # a trial that failed first may have no metrics
            metric, self.direction = resolve_metric(self.config, "accuracy" in trial.cv)
            self.metric = metric.removeprefix("val_")
        mean = trial.cv.get(self.metric, {}).get("mean")
        if trial.status == "ERROR" or not finite(mean):
            return
        sign = 1.0 if self.direction == "max" else -1.0
        key = (trial.status == "TERMINATED", sign * float(mean))
        if self.best_key is None or key > self.best_key:
            self.best, self.best_key = trial, key

    def rows(self, now: float) -> list[tuple[str, RenderableType]]:
        ended = self.before + sum(self.ended.values())
        counts = (
            f"{self.ended['TERMINATED']} finished · {self.ended['STOPPED']} stopped early · "
            f"{self.ended['ERROR']} failed · {len(self.running)} running"
        )
        if self.before:
            counts += f" · {self.before} before the resume"
        of = f"{ended}/{self.total}" if self.total else f"{ended} ended"
        rows: list[tuple[str, RenderableType]] = [
            ("trials", bar_and(ended, self.total, f"{of}  {counts}"))
        ]
        rows.append(("best", text_line(self._best_words())))
        if self.running:
            rows.append(("running", text_line(self._running_words())))
        elif self.tuned and not self.closed:
            rows.append(("next", text_line("the final model: fold models or refit, then the test")))
        rows.append(("time", text_line(self._time_words(now))))
        return rows

    def _best_words(self) -> str:
        if self.best is None:
            return "none yet"
        stats = self.best.cv[self.metric]
        config = ", ".join(f"{k}={v}" for k, v in self.best.config.items())
        return (
            f"val_{self.metric} {report.fmt(stats.get('mean'))} ± {report.fmt(stats.get('std'))}"
            f"  trial {self.best.trial_id}  {config}"
        )

    def _running_words(self) -> str:
        of = f"/{self.max_epochs}" if self.max_epochs else ""
        return " · ".join(
            f"{tid} epoch {epoch}{of}" if epoch else f"{tid} starting"
            for tid, epoch in self.running.items()
        )

    def _time_words(self, now: float) -> str:
        words = f"{duration(now - self.started)} elapsed"
        if self.budget_s is None:
            return words
        budget = f"budget {duration(self.budget_s)}"
        if self.trials_started is None:
            return f"{words} · {budget}, counted once the trials start"
        left = self.budget_s - (now - self.trials_started)
        return f"{words} · {budget}, " + (f"{duration(left)} left" if left > 0 else "spent")


def search_view(
    config: Config, quiet: bool, console: Console | None = None, clock: Clock = time.monotonic
) -> SearchView:
    """The view for ``automl search`` on ``config``: use it as a context manager around
    ``run_search`` and pass it as ``on_trial``."""
    return SearchView(config, choose_mode(quiet, console), console, clock)
