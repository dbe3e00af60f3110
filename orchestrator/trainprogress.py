"""What ``automl train`` shows while it runs: the epoch of the k folds training in lockstep and
the best so far, live, as plain lines or not at all (``orchestrator.progress`` picks the mode
and holds what the views share)."""

from __future__ import annotations

import time

from rich.console import Console, RenderableType

from orchestrator import report
from orchestrator.config import Config
from orchestrator.progress import (
    PLAIN_EPOCH_INTERVAL_S,
    Clock,
    View,
    bar_and,
    choose_mode,
    duration,
    finite,
    resolve_metric,
    text_line,
)


class TrainView(View):
    """``automl train``'s view: the ``on_epoch`` of ``run_training``, called with the fold-mean
    metrics of each epoch (the k folds train in lockstep); the last carries ``refit_epochs``."""

    def __init__(self, config: Config, mode: str, console: Console | None, clock: Clock) -> None:
        super().__init__(mode, console, clock)
        self.config = config
        self.folds = config.split.folds
        epochs = config.training.epochs
        self.max_epochs = epochs if isinstance(epochs, int) else None  # "auto": decided later
        self.metric = ""  # the search metric, once the first epoch has told the task
        self.direction = "max"
        self.latest: dict[str, float] = {}
        self.best: tuple[float, int] | None = None  # (value, epoch)
        self.cv_done = False
        self.printed_at: float | None = None

    print_tables = staticmethod(report.print_train_result)
    final_line = staticmethod(report.train_line)

    def __call__(self, metrics: dict[str, float]) -> None:
        with self.lock:
            self._update(metrics)
        if self.mode == "plain" and self._line_due():
            report.print_epoch(metrics)

    def _update(self, metrics: dict[str, float]) -> None:
        if not self.metric:
            self.metric, self.direction = resolve_metric(self.config, "val_accuracy" in metrics)
        self.latest = metrics
        self.cv_done = "refit_epochs" in metrics
        value = metrics.get(self.metric)
        if not finite(value):
            return
        best = self.best[0] if self.best is not None else None
        if best is None or (value > best if self.direction == "max" else value < best):
            self.best = (float(value), int(metrics["epoch"]))

    def _line_due(self) -> bool:
        now = self.clock()
        first, last = self.printed_at is None, self.cv_done
        if first or last or now - self.printed_at >= PLAIN_EPOCH_INTERVAL_S:
            self.printed_at = now
            return True
        return False

    def rows(self, now: float) -> list[tuple[str, RenderableType]]:
        folds = f"{self.folds} folds" if self.folds > 1 else "a holdout split"
        if not self.latest:
            stage: RenderableType = text_line("preparing the data")
        elif self.cv_done:
            epochs = int(self.latest["epoch"])
            then = "" if self.closed else "; the final model and its test"
            stage = text_line(f"cross-validated {folds} in {epochs} epochs{then}")
        else:
            epoch = int(self.latest["epoch"])
            of = f"/{self.max_epochs}" if self.max_epochs else ""
            stage = bar_and(epoch, self.max_epochs, f"epoch {epoch}{of}  {folds} in lockstep")
        rows: list[tuple[str, RenderableType]] = [("train", stage)]
        if self.latest:
            rows.append(("metrics", text_line(self._metric_words())))
        rows.append(("time", text_line(f"{duration(now - self.started)} elapsed")))
        return rows

    def _metric_words(self) -> str:
        parts = [
            f"{key} {report.fmt(self.latest[key])}"
            for key in ("train_loss", self.metric)
            if key in self.latest
        ]
        if self.best is not None:
            parts.append(f"best {report.fmt(self.best[0])} at epoch {self.best[1]}")
        return " · ".join(parts)


def train_view(
    config: Config, quiet: bool, console: Console | None = None, clock: Clock = time.monotonic
) -> TrainView:
    """The view for ``automl train`` on ``config``: use it as a context manager around the
    training and pass it as ``on_epoch``."""
    return TrainView(config, choose_mode(quiet, console), console, clock)
