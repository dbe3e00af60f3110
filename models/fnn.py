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
    ) -> None:
        super().__init__()
        self.net = DenseHead(n_features, hidden_sizes, n_outputs, activation, dropout, batch_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)  # (batch, features)
        return self.net(x)  # (batch, n_outputs)
