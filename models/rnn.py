"""Recurrent networks (RNN, LSTM, GRU): (batch, time, features) → (batch, n_outputs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from models.layers import DenseHead, check_lengths
from orchestrator.errors import ModelError

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    """A stacked RNN/LSTM/GRU whose last valid hidden state feeds a dense head.

    Variable-length input is packed, so the padding after each length never reaches the state.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_outputs: int,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        head_sizes: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ModelError(f"recurrent cell must be one of {', '.join(CELLS)}, got {cell!r}")
        _, n_features = (int(s) for s in input_shape)
        self.directions = 2 if bidirectional else 1
        self.rnn = CELLS[cell](
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = DenseHead(
            hidden_size * self.directions, head_sizes, n_outputs, activation, dropout, batch_norm
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, time, features)
        lengths = check_lengths(lengths, x.shape[1])
        if lengths is not None:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(x)
        hidden = state[0] if isinstance(state, tuple) else state  # (layers * dirs, batch, hidden)
        last = hidden[-self.directions :]  # (dirs, batch, hidden): the top layer
        last = last.transpose(0, 1).flatten(1)  # (batch, dirs * hidden)
        return self.head(self.drop(last))  # (batch, n_outputs)
