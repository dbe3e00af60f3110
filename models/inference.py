"""Inference: run a model in eval mode without gradients and turn its outputs into predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from models.tensordata import crop_padding

EVAL_BATCH = 1024


def as_tensor(a: Any, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(dtype)


def to_predictions(out: torch.Tensor, task: str) -> np.ndarray:
    """Model outputs ``(N, n_out)`` as probabilities ``(N, K)`` (one logit: ``[1 - p, p]``) for
    classification, or values ``(N,)`` for regression."""
    if task == "regression":
        return out.squeeze(-1).numpy()
    if out.shape[-1] == 1:  # a single logit: binary cross-entropy
        p = torch.sigmoid(out)
        return torch.cat([1 - p, p], dim=1).numpy()
    return torch.softmax(out, dim=1).numpy()


def predict(
    model: nn.Module,
    task: str,
    x: Any,
    lengths: Any | None = None,
    batch_size: int = EVAL_BATCH,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Run ``model`` in eval mode without gradients and turn its outputs into predictions."""
    device = torch.device(device) if device else next(model.parameters()).device
    x = as_tensor(x, torch.float32)
    lengths = None if lengths is None else as_tensor(lengths, torch.long)
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            lb = None if lengths is None else lengths[start : start + batch_size].to(device)
            xb = crop_padding(x[start : start + batch_size], lb).to(device)
            outs.append(model(xb, lb).float().cpu())
    n_out = outs[0].shape[-1] if outs else 1
    return to_predictions(torch.cat(outs) if outs else torch.zeros(0, n_out), task)
