"""Feed-forward network for tables: (batch, features) → (batch, n_outputs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.layers import DenseHead


class FNN(nn.Module):
    """Linear → [BatchNorm1d] → activation → Dropout per hidden size, then a Linear output layer."""

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        hidden_sizes: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.1,
        batch_norm: bool = True,
        linear_skip: bool = False,
    ) -> None:
        super().__init__()
        self.net = DenseHead(n_features, hidden_sizes, n_outputs, activation, dropout, batch_norm)
        # wide and deep: a linear model of the inputs added to the network's output, so the
        # network never has less than a linear model to work with
        self.skip = nn.Linear(n_features, n_outputs, bias=False) if linear_skip else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)  # (batch, features)
        out = self.net(x)  # (batch, n_outputs)
        if self.skip is not None:
            out = out + self.skip(x)
        return out
