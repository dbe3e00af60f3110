"""Transformer encoder for sequences: (batch, time, features) → (batch, n_outputs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.layers import DenseHead, check_lengths, make_activation, masked_mean, time_mask
from orchestrator.errors import ModelError


def sinusoidal_table(time: int | torch.Tensor, d_model: int, device: torch.device | None = None):
    """The fixed (time, d_model) encoding of "Attention Is All You Need", for any ``time``."""
    position = torch.arange(time, dtype=torch.float32, device=device).unsqueeze(1)  # (time, 1)
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * (-math.log(1e4) / d_model)
    )  # (ceil(d_model / 2),)
    angles = position * freq  # (time, ceil(d_model / 2))
    table = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1)
    return table[:, :d_model]  # (time, d_model): sin at even columns, cos at odd ones


class PositionalEncoding(nn.Module):
    """Adds a sinusoidal or learned position code; 'none' leaves the input unchanged.

    Sinusoidal codes exist for every position. Learned codes exist for the ``max_time`` positions
    seen in training; later positions share the last one's code (``max_time`` tells callers).
    """

    def __init__(self, kind: str, max_time: int, d_model: int) -> None:
        super().__init__()
        if kind not in ("sinusoidal", "learned", "none"):
            raise ModelError(
                f"model.positional must be one of sinusoidal, learned, none, got {kind!r}"
            )
        self.kind, self.max_time, self.d_model = kind, max_time, d_model
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_time, d_model) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, time, d_model)
        if self.kind == "none":
            return x
        time = x.shape[1]
        if self.kind == "sinusoidal":
            return x + sinusoidal_table(time, self.d_model, x.device).to(x.dtype)
        steps = torch.arange(time, device=x.device).clamp(max=self.max_time - 1)  # (time,)
        return x + self.table[steps]  # (batch, time, d_model)


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
        # learned position codes stop at the training length; later steps share the last code
        self.max_length = time if positional == "learned" else None
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
        pooled = masked_mean(h.transpose(1, 2), keep.unsqueeze(1))  # (batch, d_model)
        return self.head(pooled)  # (batch, n_outputs)
