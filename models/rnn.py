"""Recurrent networks (RNN, LSTM, GRU): (batch, time, features) → (batch, n_outputs).

Sequences are padded after their length. The forward direction reads the valid steps first, so
its output at step ``length - 1`` is exact; the backward direction reads each sequence reversed
within its length (``flip_valid``). No packing: the same graph runs for any batch and length,
and traces for TorchScript and ONNX export.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.layers import DenseHead, check_lengths, flip_valid
from orchestrator.errors import ModelError

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _at(outputs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """``outputs[b, steps[b]]`` for (batch, time, hidden) outputs: (batch, hidden)."""
    index = steps.view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


class RecurrentNet(nn.Module):
    """A stacked RNN/LSTM/GRU whose last valid output (per direction) feeds a dense head."""

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
        self.cell, self.bidirectional = cell, bidirectional
        between = dropout if num_layers > 1 else 0.0
        if bidirectional:
            # one single-layer module per layer and direction: between layers both directions'
            # outputs are re-aligned step by step, which nn.RNNBase's own stacking cannot do
            # without packing
            self.forward_layers, self.backward_layers = nn.ModuleList(), nn.ModuleList()
            width = n_features
            for _ in range(num_layers):
                self.forward_layers.append(CELLS[cell](width, hidden_size, batch_first=True))
                self.backward_layers.append(CELLS[cell](width, hidden_size, batch_first=True))
                width = 2 * hidden_size
            self.between = nn.Dropout(between) if between > 0 else nn.Identity()
        else:
            self.rnn = CELLS[cell](
                n_features, hidden_size, num_layers=num_layers, batch_first=True, dropout=between
            )
        directions = 2 if bidirectional else 1
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = DenseHead(
            hidden_size * directions, head_sizes, n_outputs, activation, dropout, batch_norm
        )

    def _bidirectional(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = x  # (batch, time, features)
        layers = list(zip(self.forward_layers, self.backward_layers, strict=True))
        for i, (fwd, bwd) in enumerate(layers):
            ahead, _ = fwd(h)  # (batch, time, hidden)
            behind, _ = bwd(flip_valid(h, lengths))  # reversed within each length
            behind = flip_valid(behind, lengths)  # back to time order
            h = torch.cat([ahead, behind], dim=-1)  # (batch, time, 2 * hidden)
            if i < len(layers) - 1:
                h = self.between(h)
        hidden = h.shape[-1] // 2
        last_ahead = _at(h[..., :hidden], lengths - 1)  # forward: after the last valid step
        first_behind = h[:, 0, hidden:]  # backward: after reading back to step 0
        return torch.cat([last_ahead, first_behind], dim=1)  # (batch, 2 * hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, time, features)
        batch, time, _ = x.shape
        lengths = check_lengths(lengths, time)
        if lengths is None:
            lengths = torch.full((batch,), time, dtype=torch.long, device=x.device)
        if self.bidirectional:
            last = self._bidirectional(x, lengths)
        else:
            outputs, _ = self.rnn(x)  # (batch, time, hidden): the top layer
            last = _at(outputs, lengths - 1)  # (batch, hidden)
        return self.head(self.drop(last))  # (batch, n_outputs)
