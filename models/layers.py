"""Building blocks shared by every family: the activation factory and the dense head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from orchestrator.errors import ModelError, did_you_mean

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (relu, gelu, tanh, sigmoid, leaky_relu)."""
    if name not in ACTIVATIONS:
        raise ModelError(
            f"model.activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}"
            f"{did_you_mean(name, ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


class DenseHead(nn.Module):
    """Linear → [BatchNorm1d] → activation → Dropout per hidden size, then Linear to the outputs."""

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        n_outputs: int,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers.append(nn.Linear(width, int(size)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(size)))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (batch, features) -> (batch, n_outputs)


def time_mask(
    lengths: torch.Tensor | None, batch: int, time: int, device: torch.device
) -> torch.Tensor:
    """Boolean (batch, time) mask, True at valid steps; all True when ``lengths`` is None."""
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    steps = torch.arange(time, device=device)  # (time,)
    return steps.unsqueeze(0) < lengths.to(device).unsqueeze(1)  # (batch, time)


def check_lengths(lengths: torch.Tensor | None, time: int) -> torch.Tensor | None:
    """Clamp ``lengths`` into [1, time] so that an empty sequence never yields NaN."""
    if lengths is None:
        return None
    return lengths.long().clamp(min=1, max=time)


def masked_mean(h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``h`` (batch, channels, time) over steps where ``keep`` (batch, 1, time) holds."""
    weights = keep.to(h.dtype)
    return (h * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)  # (batch, channels)


def flip_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` (batch, time, features) within its length; padding stays.

    Its own inverse. Index arithmetic only, so it traces with a dynamic time axis.
    """
    time = x.shape[1]
    steps = torch.arange(time, device=x.device).unsqueeze(0)  # (1, time)
    last = (lengths.to(x.device) - 1).unsqueeze(1)  # (batch, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (batch, time)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def channels_first(
    x: torch.Tensor, lengths: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (batch, time, features) as (batch, features, time) with zeros after each length,
    and the (batch, 1, time) mask of valid steps: the input of a masked 1-D convolution stack."""
    batch, time, _ = x.shape
    keep = time_mask(check_lengths(lengths, time), batch, time, x.device).unsqueeze(1)
    return x.transpose(1, 2).masked_fill(~keep, 0.0), keep
