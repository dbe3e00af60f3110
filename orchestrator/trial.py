"""The Ray Tune trainable: a thin adapter around :func:`cross_validate`.

The sampled point holds only the searched keys; the base config, the prepared data and the MLflow
ids arrive through ``tune.with_parameters`` (the data goes into Ray's object store once). The
trial logs its own child run under the parent id it is given, never one it inherits.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import tempfile
import time
from typing import Any

import torch
from ray import tune

from orchestrator.config import Config, apply_overrides
from orchestrator.crossval import PreparedData, cross_validate
from orchestrator.errors import TrainingError
from orchestrator.space import decode_point

REPORT_INTERVAL_S = 1.0


def release_memory() -> None:
    """Hand a finished trial's memory back to the system before the worker runs the next one.

    Each trial runs in a fresh thread, and glibc gives threads their own malloc arenas: the
    tensors of a large trial, once freed, would otherwise stay mapped in the reused worker and
    its resident memory would grow with the number of trials it has run. (No ``gc.collect()``:
    it costs ~0.25 s in a worker with torch and MLflow loaded. A trial's data must therefore be
    freed by reference counting alone, i.e. hold no reference cycles: tests/test_fused.py checks
    that for the cross-validation objects. A cycle through the fused folds' stacked data once
    grew each worker by ~100 MB per B4 trial.)
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def trial_config(base_config: Config, point: dict[str, Any]) -> Config:
    """The sampled point applied to the base config and validated again."""
    return apply_overrides(base_config, decode_point(point))


def run_trial(
    point: dict[str, Any],
    *,
    prepared: PreparedData,
    base_config: Config,
    tracking: tuple[str, str, str] | None = None,
    cleaning: dict | None = None,
    reattach: bool = True,
) -> None:
    """Cross-validate one sampled configuration, reporting fold-mean metrics every epoch."""
    release_memory()  # what the worker's previous trial left
    # exactly this trial's CPUs' worth of threads: two 1-thread trials beat one 2-thread trial
    torch.set_num_threads(max(1, int(base_config.search.cpus_per_trial)))
    tracker = None
    if tracking is not None:
        from orchestrator.tracking import TrialTracker

        # reattach: an earlier attempt of this trial may have a run (resumed search, retry)
        tracker = TrialTracker(*tracking, reattach=reattach)
    with tracker if tracker is not None else contextlib.nullcontext():
        config = trial_config(base_config, point)
        if tracker is not None:
            tracker.start(tune.get_context().get_trial_id(), config)
        metric = base_config.search.metric
        # with retries allowed, every epoch is checkpointed and a retry resumes from the last one
        checkpointing = base_config.search.max_failures > 0
        restored = tune.get_checkpoint()
        resume_dir = restored.to_directory() if restored is not None else None
        cv = cross_validate(prepared, config, resume_dir, checkpointing)
        # Every tune.report waits for the driver to collect it (~10 ms a round trip). Without an
        # early-stopping scheduler no one acts on a trial's intermediate results, so a FIFO trial
        # reports at most every REPORT_INTERVAL_S and at its last epoch (MLflow still gets every
        # epoch); schedulers and checkpointed trials report every epoch.
        throttled = base_config.search.scheduler == "fifo"
        next_report = time.monotonic() + REPORT_INTERVAL_S
        for metrics in cv:
            value = metrics.get(metric) if metric else None
            if value is not None and not math.isfinite(value):
                raise TrainingError(f"{metric} became {value} at epoch {int(metrics['epoch'])}")
            if tracker is not None:
                tracker.log_epoch(metrics, int(metrics["epoch"]))
                if cv.result is not None:
                    # the last epoch: end the run before reporting, because a scheduler whose
                    # max_t is this epoch stops the trial inside tune.report
                    tracker.finish(
                        cv.result,
                        prepared.task,
                        cv.class_names,
                        cleaning,
                        metric,
                        figures=config.tracking.trial_figures,
                    )
                    metrics = {**metrics, "tracking_s": tracker.seconds}
            if checkpointing:
                with tempfile.TemporaryDirectory() as folder:
                    cv.save_state(folder)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            elif not throttled or cv.result is not None or time.monotonic() >= next_report:
                tune.report(metrics)
                next_report = time.monotonic() + REPORT_INTERVAL_S
