"""Losses by task: which loss a task allows, the network's output size, and the loss values."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from orchestrator.errors import ConfigError

LOSSES = {
    "classification": ("auto", "cross_entropy", "bce"),
    "regression": ("auto", "mse", "huber"),
}


def resolve_loss(task: str, loss: str) -> str:
    """The concrete loss name for ``task``; ConfigError when the loss does not fit the task."""
    if task not in LOSSES:
        raise ConfigError(f"task must be one of {', '.join(LOSSES)}, got {task!r}")
    if loss not in LOSSES[task]:
        raise ConfigError(
            f"training.loss '{loss}' does not fit a {task} task; allowed: {', '.join(LOSSES[task])}"
        )
    if loss == "auto":
        return "cross_entropy" if task == "classification" else "mse"
    return loss


def output_size(task: str, n_classes: int | None, loss: str = "auto") -> int:
    """The number of network outputs: n_classes for cross_entropy, 1 for bce and regression."""
    loss = resolve_loss(task, loss)
    if task == "regression":
        return 1
    if n_classes is None or n_classes < 2:
        raise ConfigError(f"classification needs at least 2 classes, got {n_classes}")
    if loss == "bce":
        if n_classes != 2:
            raise ConfigError(
                f"training.loss 'bce' needs a binary target, got {n_classes} classes; "
                "use 'cross_entropy' or 'auto'"
            )
        return 1
    return int(n_classes)


def loss_value(loss_name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean ``loss_name`` loss of outputs ``(batch, n_outputs)`` against targets ``y``."""
    if loss_name == "cross_entropy":
        return F.cross_entropy(out, y)
    if loss_name == "bce":
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y.to(out.dtype))
    if loss_name == "huber":
        return F.huber_loss(out.squeeze(-1), y)
    return F.mse_loss(out.squeeze(-1), y)


def fold_losses(loss_name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each fold's mean loss ``(k,)`` from outputs ``(k, batch, n_outputs)`` and targets."""
    if loss_name == "cross_entropy":
        per_sample = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none")
        return per_sample.view(y.shape).mean(1)
    out = out.squeeze(-1)  # (k, batch)
    if loss_name == "bce":
        return F.binary_cross_entropy_with_logits(out, y.to(out.dtype), reduction="none").mean(1)
    if loss_name == "huber":
        return F.huber_loss(out, y, reduction="none").mean(1)
    return F.mse_loss(out, y, reduction="none").mean(1)
