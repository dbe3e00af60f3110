"""The Ray Tune trainable: a thin adapter around :func:`cross_validate`.

The sampled point holds only the searched keys; the base config and the prepared data arrive
through ``tune.with_parameters`` (the data goes into Ray's object store once).

A trial never talks to MLflow: with tracking on, each report also carries, under
:data:`RESULT_KEY`, the epochs since the previous report and, in the last one, the
cross-validation result; the driver's writer (``orchestrator.tracking.writer``) logs the trial's
child run from them. A worker so never imports MLflow or opens the store (~2.5 s of start-up per
worker) and spends no trial time on tracking.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import pickle
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import torch
from ray import tune

from orchestrator.config import Config, apply_overrides, uses_fold_ensemble
from orchestrator.crossval import PreparedData, cross_validate
from orchestrator.errors import TrainingError
from orchestrator.ray_adapter import FOLDS_KEY, RESULT_KEY
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


@contextlib.contextmanager
def memory_limit(mb: int | None) -> Iterator[None]:
    """While the block runs, the worker's address space may grow by at most ``mb`` MB
    (``search.trial_memory_mb``; RLIMIT_AS, restored after: the worker runs other trials);
    an allocation past it is a ``TrainingError`` that says so."""
    if not mb:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * resource.getpagesize()
    limit = used + mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        detail = " ".join(str(err).split())[:160] or type(err).__name__
        raise TrainingError(
            f"out of memory: the trial allocated past its {mb} MB (search.trial_memory_mb): "
            f"{detail}"
        ) from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def trial_config(base_config: Config, point: dict[str, Any]) -> Config:
    """The sampled point applied to the base config and validated again."""
    return apply_overrides(base_config, decode_point(point))


# objectives that are costs of the model rather than validation metrics (search.metrics)
COST_METRICS = ("predict_ms", "n_params")
COST_ROWS = 64  # predict_ms: the time to score this many rows


def network_costs(cv: Any, members: int) -> dict[str, float]:
    """``predict_ms``: milliseconds for the final model's ``members`` networks to score
    ``COST_ROWS`` validation rows (the median of 5 passes after a warm-up, preprocessing
    excluded); ``n_params``: one network's parameters. Both depend only on the architecture:
    measured once, on fold 1's network."""
    fold = cv.folds[0]
    model = fold.trainer.model
    data = fold.val if fold.val is not None else None
    costs = {"n_params": float(sum(p.numel() for p in model.parameters()))}
    if data is None or len(data) == 0:
        return costs
    batch = data.take(torch.arange(min(COST_ROWS, len(data)), device=data.x.device))
    was_training = model.training
    model.eval()
    times = []
    with torch.no_grad():
        for _ in range(6):
            start = time.perf_counter()
            model(batch.x, batch.lengths)
            times.append(time.perf_counter() - start)
    model.train(was_training)
    costs["predict_ms"] = 1000.0 * members * sorted(times[1:])[2]
    return costs


def epoch_row(metrics: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """``(epoch, numeric metrics)`` of one epoch, as the driver's writer logs it."""
    values = {
        k: float(v)
        for k, v in metrics.items()
        if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return int(metrics["epoch"]), values


def trial_report(
    metrics: dict[str, Any],
    cv: Any,
    pending: list[tuple[int, dict[str, float]]] | None,
    keep_folds: bool,
) -> dict[str, Any]:
    """What a trial reports: the fold-mean ``metrics``; with tracking (``pending`` not None)
    the epochs the driver has not had yet and, at the end, the CV result; at the end under the
    fold ensemble, the fold models, pickled (the driver's FoldModels keeps the best trial's)."""
    last = cv.result is not None
    report = dict(metrics)
    if pending is not None:
        log: dict[str, Any] = {"epochs": pending}
        if last:
            log.update(cv=cv.result, class_names=cv.class_names)
        report[RESULT_KEY] = log
    if last and keep_folds:
        report[FOLDS_KEY] = {"models": pickle.dumps(cv.ensemble().cpu_copy())}
    return report


def run_trial(
    point: dict[str, Any],
    *,
    prepared: PreparedData,
    base_config: Config,
    tracking: bool = False,
) -> None:
    """Cross-validate one sampled configuration, reporting fold-mean metrics every epoch."""
    release_memory()  # what the worker's previous trial left
    config = trial_config(base_config, point)
    # exactly this trial's CPUs' worth of threads unless training.num_threads says otherwise:
    # two 1-thread trials beat one 2-thread trial
    threads = config.training.num_threads or max(1, int(base_config.search.cpus_per_trial))
    torch.set_num_threads(threads)
    restored = tune.get_checkpoint()
    resume_dir = restored.to_directory() if restored is not None else None
    with memory_limit(base_config.search.trial_memory_mb):
        _cross_validate_and_report(config, base_config, prepared, tracking, resume_dir)


def _cross_validate_and_report(config, base_config, prepared, tracking, resume_dir) -> None:
    """The trial proper: cross-validate ``config``, reporting as :func:`run_trial` says."""
    metric = base_config.search.metric
    # with retries allowed, every epoch is checkpointed and a retry resumes from the last one
    checkpointing = base_config.search.max_failures > 0
    cv = cross_validate(prepared, config, resume_dir, checkpointing)
    keep_folds = uses_fold_ensemble(config)
    # Every tune.report waits for the driver to collect it (~10 ms a round trip). Without an
    # early-stopping scheduler no one acts on a trial's intermediate results, so a FIFO trial
    # reports at most every REPORT_INTERVAL_S and at its last epoch (MLflow still gets every
    # epoch: the rows ride on the next report); schedulers and checkpointed trials report every
    # epoch.
    throttled = base_config.search.scheduler == "fifo"
    next_report = time.monotonic() + REPORT_INTERVAL_S
    pending: list[tuple[int, dict[str, float]]] = []  # epochs the driver has not been sent
    last_good: dict[str, Any] = {}  # the latest epoch that passed the finiteness check
    wants_costs = any(m in COST_METRICS for m in base_config.search.metrics)
    costs: dict[str, float] | None = None
    try:
        for metrics in cv:
            if wants_costs:
                if costs is None:
                    costs = network_costs(cv, len(cv.folds) if keep_folds else 1)
                metrics = {**metrics, **costs}
            value = metrics.get(metric) if metric else None
            if value is not None and not math.isfinite(value):
                raise TrainingError(f"{metric} became {value} at epoch {int(metrics['epoch'])}")
            last_good = metrics
            if tracking:
                pending.append(epoch_row(metrics))
            last = cv.result is not None
            if not (checkpointing or not throttled or last or time.monotonic() >= next_report):
                continue
            report = trial_report(metrics, cv, pending if tracking else None, keep_folds)
            pending = []
            if checkpointing:
                with tempfile.TemporaryDirectory() as folder:
                    cv.save_state(folder)
                    tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(report)
            next_report = time.monotonic() + REPORT_INTERVAL_S
    except Exception:
        # a failing FIFO trial still hands over the epochs it trained since its last report
        if pending and last_good:
            with contextlib.suppress(Exception):
                tune.report({**last_good, RESULT_KEY: {"epochs": pending}})
        raise
