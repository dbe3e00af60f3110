"""The Ray Tune trainable: a thin adapter around :func:`cross_validate`.

The sampled point holds only the searched keys; the base config and the prepared data arrive
through ``tune.with_parameters`` (the data goes into Ray's object store once).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray import tune

from orchestrator.config import Config, apply_overrides
from orchestrator.crossval import PreparedData, cross_validate
from orchestrator.errors import TrainingError
from orchestrator.space import decode_point


def trial_config(base_config: Config, point: dict[str, Any]) -> Config:
    """The sampled point applied to the base config and validated again."""
    return apply_overrides(base_config, decode_point(point))


def run_trial(point: dict[str, Any], *, prepared: PreparedData, base_config: Config) -> None:
    """Cross-validate one sampled configuration, reporting fold-mean metrics every epoch."""
    # exactly this trial's CPUs' worth of threads: two 1-thread trials beat one 2-thread trial
    torch.set_num_threads(max(1, int(base_config.search.cpus_per_trial)))
    config = trial_config(base_config, point)
    metric = base_config.search.metric
    for metrics in cross_validate(prepared, config):
        value = metrics.get(metric) if metric else None
        if value is not None and not math.isfinite(value) and metric.endswith("loss"):
            raise TrainingError(f"{metric} became {value} at epoch {int(metrics['epoch'])}")
        tune.report(metrics)
