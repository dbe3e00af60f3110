"""Transformer encoder for sequences: (batch, time, features) → (batch, n_outputs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.layers import DenseHead, check_lengths, make_activation, time_mask
from orchestrator.errors import ModelError


def sinusoidal_table(time: int, d_model: int) -> torch.Tensor:
    """The fixed (time, d_model) encoding of "Attention Is All You Need"."""
    position = torch.arange(time, dtype=torch.float32).unsqueeze(1)  # (time, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(time, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class PositionalEncoding(nn.Module):
    """Adds a sinusoidal or learned position code; 'none' leaves the input unchanged."""

    def __init__(self, kind: str, max_time: int, d_model: int) -> None:
        super().__init__()
        if kind not in ("sinusoidal", "learned", "none"):
            raise ModelError(
                f"model.positional must be one of sinusoidal, learned, none, got {kind!r}"
            )
        self.kind, self.max_time, self.d_model = kind, max_time, d_model
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_time, d_model) * 0.02)
        elif kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(max_time, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, time, d_model)
        if self.kind == "none":
            return x
        time = x.shape[1]
        if time > self.table.shape[0]:
            if self.kind == "learned":
                raise ModelError(
                    f"learned positional encoding covers {self.max_time} time steps, got {time}"
                )
            return x + sinusoidal_table(time, self.d_model).to(x.device)
        return x + self.table[:time]  # (batch, time, d_model)


class TransformerNet(nn.Module):
    """Input projection, positional encoding, pre-norm encoder, masked mean pooling, dense head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_outputs: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        dim_feedforward: int = 128,
        positional: str = "sinusoidal",
        head_sizes: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ModelError(
                f"model.d_model must be divisible by model.num_heads, got {d_model} and {num_heads}"
            )
        time, n_features = (int(s) for s in input_shape)
        self.project = nn.Linear(n_features, d_model)
        self.position = PositionalEncoding(positional, time, d_model)
        # The encoder layer takes "relu"/"gelu" by name and any other activation as a callable.
        act = activation if activation in ("relu", "gelu") else make_activation(activation)
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward,
            dropout,
            activation=act,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.head = DenseHead(d_model, head_sizes, n_outputs, activation, dropout, batch_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, time, features)
        batch, time, _ = x.shape
        lengths = check_lengths(lengths, time)
        keep = time_mask(lengths, batch, time, x.device)  # (batch, time), True = valid
        x = x.masked_fill(~keep.unsqueeze(-1), 0.0)  # padding may hold anything, even NaN
        h = self.position(self.project(x))  # (batch, time, d_model)
        padding_mask = None if lengths is None else ~keep
        h = self.encoder(h, src_key_padding_mask=padding_mask)  # (batch, time, d_model)
        weights = keep.unsqueeze(-1).to(h.dtype)  # (batch, time, 1)
        pooled = (h * weights).sum(1) / weights.sum(1)  # (batch, d_model)
        return self.head(pooled)  # (batch, n_outputs)
