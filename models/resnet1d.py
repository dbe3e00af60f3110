"""ResNet for time series (Wang, Yan and Oates, 2017): (batch, time, features) → (batch, n_outputs).

Residual blocks of three convolutions (kernels 8, 5, 3) with batch normalisation, then global
average pooling over the valid steps. Ismail Fawaz et al. (2019) found it the strongest deep
classifier over the UCR/UEA archives. Convolutions keep the length ("same" padding) and the
padding after each sequence's length is zeroed before every convolution, so a padded sequence
gives the output of the unpadded one, for any length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.layers import DenseHead, channels_first, make_activation, masked_mean

KERNELS = (8, 5, 3)


class ResidualBlock1d(nn.Module):
    """conv-BN-act, conv-BN-act, conv-BN, plus a 1×1-conv-BN shortcut, then the activation."""

    def __init__(self, in_ch: int, out_ch: int, activation: str) -> None:
        super().__init__()
        convs, norms = [], []
        width = in_ch
        for k in KERNELS:
            # "same" padding spelled out: torch's padding="same" copies the input for even kernels
            convs.append(
                nn.Sequential(
                    nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0),
                    nn.Conv1d(width, out_ch, k, bias=False),
                )
            )
            norms.append(nn.BatchNorm1d(out_ch))
            width = out_ch
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.shortcut = nn.Sequential(
            nn.Conv1d(in_ch, out_ch, 1, bias=False), nn.BatchNorm1d(out_ch)
        )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time); keep: (batch, 1, time), True at valid steps
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = norm(conv(h))  # (batch, out_ch, time)
            if i < len(self.convs) - 1:
                h = self.act(h).masked_fill(~keep, 0.0)
        return self.act(h + self.shortcut(x)).masked_fill(~keep, 0.0)


class ResNet1d(nn.Module):
    """One residual block per ``channels`` entry, masked global average pooling, dense head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        n_outputs: int,
        channels: Sequence[int] = (64, 128, 128),
        head_sizes: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        _, width = (int(s) for s in input_shape)
        blocks = []
        for out_ch in channels:
            blocks.append(ResidualBlock1d(width, int(out_ch), activation))
            width = int(out_ch)
        self.blocks = nn.ModuleList(blocks)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = DenseHead(width, head_sizes, n_outputs, activation, dropout, batch_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, time, features)
        h, keep = channels_first(x, lengths)  # (batch, features, time), (batch, 1, time)
        for block in self.blocks:
            h = block(h, keep)  # (batch, channels, time)
        return self.head(self.drop(masked_mean(h, keep)))  # (batch, n_outputs)
