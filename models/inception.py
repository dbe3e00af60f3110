"""InceptionTime's network (Ismail Fawaz et al., 2020): (batch, time, features) → (batch, n_out).

Inception modules: a 1×1 bottleneck, then convolutions with three kernel lengths (the longest
``max_kernel``, then a half and a quarter of it) beside a max-pool branch, concatenated; a residual
shortcut every three modules; global average pooling over the valid steps. The kernels are capped
at the training length (a kernel longer than every series only sees padding). Convolutions keep
the length, and the padding after each length is zeroed before each of them, so any length works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import DenseHead, channels_first, make_activation, masked_mean


def kernel_lengths(max_kernel: int, time: int) -> list[int]:
    """Three odd kernel lengths: ``max_kernel`` (capped at ``time``), a half and a quarter."""
    longest = max(3, min(int(max_kernel), int(time)))
    return [max(1, (longest // d) | 1) for d in (1, 2, 4)]  # odd: symmetric "same" padding


def _max_of_three(x: torch.Tensor) -> torch.Tensor:
    """Max pooling over 3 steps, stride 1, "same" length (x: (batch, channels, time)).

    Spelled out with shifts: ``F.max_pool1d`` fixes the time axis when exported to ONNX.
    """
    padded = F.pad(x, (1, 1), value=float("-inf"))
    return torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])


class InceptionModule(nn.Module):
    def __init__(
        self, in_ch: int, filters: int, kernels: Sequence[int], bottleneck: int, activation: str
    ) -> None:
        super().__init__()
        self.bottleneck = (
            nn.Conv1d(in_ch, bottleneck, 1, bias=False) if in_ch > 1 else nn.Identity()
        )
        width = bottleneck if in_ch > 1 else in_ch
        self.convs = nn.ModuleList(
            nn.Conv1d(width, filters, k, padding=k // 2, bias=False) for k in kernels
        )
        self.pool_conv = nn.Conv1d(in_ch, filters, 1, bias=False)
        self.norm = nn.BatchNorm1d(filters * (len(kernels) + 1))
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_ch, time), zero after each length; keep: (batch, 1, time)
        z = self.bottleneck(x)  # (batch, bottleneck, time)
        branches = [conv(z) for conv in self.convs]  # each (batch, filters, time)
        pooled = _max_of_three(x.masked_fill(~keep, float("-inf")))  # padding never wins
        branches.append(self.pool_conv(pooled.masked_fill(~keep, 0.0)))
        h = self.act(self.norm(torch.cat(branches, dim=1)))  # (batch, 4 * filters, time)
        return h.masked_fill(~keep, 0.0)


class InceptionNet(nn.Module):
    """``depth`` inception modules with a residual shortcut every 3, masked GAP, dense head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_outputs: int,
        depth: int = 6,
        filters: int = 32,
        max_kernel: int = 40,
        head_sizes: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        time, in_ch = (int(s) for s in input_shape)
        kernels = kernel_lengths(max_kernel, time)
        width = filters * (len(kernels) + 1)
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleDict()
        res_in = in_ch
        channels = in_ch
        for i in range(depth):
            self.blocks.append(InceptionModule(channels, filters, kernels, filters, activation))
            channels = width
            if i % 3 == 2:
                self.shortcuts[str(i)] = nn.Sequential(
                    nn.Conv1d(res_in, width, 1, bias=False), nn.BatchNorm1d(width)
                )
                res_in = width
        self.act = make_activation(activation)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = DenseHead(width, head_sizes, n_outputs, activation, dropout, batch_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, time, features)
        h, keep = channels_first(x, lengths)  # (batch, features, time), (batch, 1, time)
        residual = h
        for i, module in enumerate(self.blocks):
            h = module(h, keep)  # (batch, 4 * filters, time)
            if str(i) in self.shortcuts:
                h = self.act(h + self.shortcuts[str(i)](residual)).masked_fill(~keep, 0.0)
                residual = h
        return self.head(self.drop(masked_mean(h, keep)))  # (batch, n_outputs)
