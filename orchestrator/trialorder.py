"""The order in which a grid search starts its trials: the most expensive first.

Tune starts a grid's points in the order of their Cartesian product. With more points than
workers, the trials that start last decide when the search ends: a long one started last runs
alone while the other workers idle (B4: the biggest of 4 models started last and ran 3.6 s on
one of the 2 cores). Starting the longest first (LPT scheduling) leaves short trials to fill the
gaps at the end. The cost of a point is estimated from what it trains, not measured:

    epochs × (rows × parameters + steps × STEP_COST)

multiply-adds of the forward pass per row (one per parameter, the right order for dense layers),
plus a fixed cost per optimizer step (Python, kernel launches) that makes small batches dear.
Only the order changes, never the set of trials; ties keep the grid's order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from orchestrator.config import Config, apply_overrides
from orchestrator.folds import PreparedData, effective_family
from orchestrator.space import decode_point

logger = logging.getLogger(__name__)

# one optimizer step's fixed cost in multiply-adds: ~0.3 ms of Python and kernel launches at
# the ~6 GFLOP/s a core of this machine reaches on small matrices
STEP_COST = 2e6
# past this many points the estimate's cost (a model built per point) outweighs the gain
MAX_POINTS = 1024


def estimated_cost(
    config: Config, family: str, input_shape: Sequence[int], n_outputs: int, rows: int
) -> float:
    """The relative training cost of ``config`` (its model a ``family``) on ``rows`` training
    rows (see the module)."""
    import torch

    from models import build_model

    spec = config.model.model_copy(update={"family": family})
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = build_model(spec, input_shape, n_outputs)
    params = sum(p.numel() for p in model.parameters())
    training = config.training
    steps = math.ceil(rows / training.batch_size)
    return training.epochs * (rows * params + steps * STEP_COST)


def longest_first(
    points: list[dict[str, Any]], config: Config, prepared: PreparedData
) -> list[dict[str, Any]] | None:
    """``points`` (encoded grid points) by estimated cost, the dearest first.

    The input shape, classes and rows are those of the folds the driver fitted; None (Tune's
    order) where it fitted none (a space over the data or the split), where the grid is too
    large to estimate, or where a point's model cannot be built (its trial reports why).
    """
    if prepared.folds is None or not prepared.folds.entries or len(points) > MAX_POINTS:
        return None
    from models import output_size

    fold = next(iter(prepared.folds.entries.values()))
    input_shape = tuple(fold.preprocessor.output_shape_)
    n_classes = getattr(fold.target, "n_classes_", None)
    rows = len(fold.fit.y)
    costs = []
    for point in points:
        try:
            point_config = apply_overrides(config, decode_point(point))
            n_out = output_size(prepared.task, n_classes, point_config.training.loss)
            family = effective_family(point_config, prepared)
            costs.append(estimated_cost(point_config, family, input_shape, n_out, rows))
        except Exception as err:
            logger.debug("no cost estimate for %s: %s", point, err)
            return None
    order = sorted(range(len(points)), key=lambda i: -costs[i])  # stable: ties keep grid order
    return [points[i] for i in order]
