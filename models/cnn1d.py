"""Temporal convolutional network for sequences: (batch, time, features) → (batch, n_outputs).

Padding after each sequence's length is zeroed before every block, so a padded sequence gives the
same output as the unpadded one, whatever the padding holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import DenseHead, check_lengths, make_activation, time_mask
from orchestrator.errors import ModelError


class ConvBlock1d(nn.Module):
    """Conv1d → [BatchNorm1d] → activation → [pool 2] → Dropout, tracking valid lengths."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int,
        padding: int,
        pool: str,
        activation: str,
        dropout: float,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, stride, padding, bias=not batch_norm)
        self.norm = nn.BatchNorm1d(out_ch) if batch_norm else nn.Identity()
        self.act = make_activation(activation)
        self.pool = pool
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def out_length(self, length: torch.Tensor | int, pooled: bool) -> torch.Tensor | int:
        length = (length + 2 * self.padding - self.kernel_size) // self.stride + 1
        return length // 2 if pooled else length

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # x: (batch, channels, time)
        x = self.act(self.norm(self.conv(x)))  # (batch, out_ch, time')
        pooled = self.pool != "none"  # CNN1d pads its input so that there are 2 steps to pool
        if pooled:
            # pairs of steps by reshaping, not MaxPool1d: that one fixes the length in ONNX
            half = x.shape[-1] // 2
            pairs = x[..., : 2 * half].unflatten(-1, (half, 2))  # (batch, out_ch, time' // 2, 2)
            x = pairs.amax(-1) if self.pool == "max" else pairs.mean(-1)
        if lengths is not None:
            lengths = check_lengths(self.out_length(lengths, pooled), x.shape[-1])
        return self.drop(x), lengths


def _shortest_input(blocks: list[ConvBlock1d], pool: str) -> int:
    """The fewest time steps for which every block still leaves one and every pooling has two
    to pool (with "same" padding and no pooling: 1). Shorter input is padded to this length."""
    for steps in range(1, 100_000):
        time = steps
        for block in blocks:
            time = block.out_length(time, pooled=False)
            if time < 1 or (pool != "none" and time < 2):
                break
            time = time // 2 if pool != "none" else time
        else:
            return steps
    return 100_000


class CNN1d(nn.Module):
    """Conv1d blocks over time, masked global average + max pooling, dense head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_outputs: int,
        channels: Sequence[int] = (32, 64),
        head_sizes: Sequence[int] = (128,),
        kernel_size: int = 3,
        stride: int = 1,
        padding: str = "same",
        pool: str = "max",
        activation: str = "relu",
        dropout: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ModelError(f"model.padding must be one of same, valid, got {padding!r}")
        time, in_ch = (int(s) for s in input_shape)
        pad = kernel_size // 2 if padding == "same" else 0
        blocks = []
        for i, out_ch in enumerate(channels):
            block = ConvBlock1d(
                in_ch, int(out_ch), kernel_size, stride, pad, pool, activation, dropout, batch_norm
            )
            new_time = block.out_length(time, pooled=False)
            if new_time < 1:
                raise ModelError(
                    f"model.channels block {i + 1} leaves no time steps: {time} steps with "
                    f"kernel_size {kernel_size}, stride {stride} and padding '{padding}'; "
                    "use fewer channels entries, padding 'same' or a smaller kernel"
                )
            time = new_time // 2 if pool != "none" and new_time >= 2 else new_time
            blocks.append(block)
            in_ch = int(out_ch)
        self.blocks = nn.ModuleList(blocks)
        self.min_length = _shortest_input(blocks, pool)
        self.head = DenseHead(2 * in_ch, head_sizes, n_outputs, activation, dropout, batch_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, time, features)
        lengths = check_lengths(lengths, x.shape[1])
        if x.shape[1] < self.min_length:  # too short to convolve and pool: zeros, masked off
            x = F.pad(x, (0, 0, 0, self.min_length - x.shape[1]))
        x = x.transpose(1, 2)  # (batch, features, time)
        for block in self.blocks:
            if lengths is not None:
                keep = time_mask(lengths, x.shape[0], x.shape[-1], x.device)  # (batch, time)
                x = x.masked_fill(~keep.unsqueeze(1), 0.0)  # padding may hold anything
            x, lengths = block(x, lengths)  # (batch, channels, time')
        keep = time_mask(lengths, x.shape[0], x.shape[-1], x.device)
        keep = keep.unsqueeze(1)  # (batch, 1, time)
        mean = x.masked_fill(~keep, 0.0).sum(-1) / keep.sum(-1)  # (batch, channels)
        peak = x.masked_fill(~keep, float("-inf")).amax(-1)  # (batch, channels)
        return self.head(torch.cat([mean, peak], dim=1))  # (batch, n_outputs)
