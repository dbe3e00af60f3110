"""2-D convolutional network for images: (batch, channels, height, width) → (batch, n_outputs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.layers import DenseHead, make_activation
from orchestrator.errors import ModelError

# Above this spatial size the feature map is average-pooled before flattening, so that the head
# stays small on large images.
MAX_FLAT_SIDE = 4


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class CNN(nn.Module):
    """Conv blocks (conv → [BatchNorm2d] → activation → pool → Dropout2d), flatten, dense head.

    Pooling is skipped in a block whose input is smaller than 2×2, so 8×8 images take 3 blocks.
    """

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
        if pool not in ("max", "avg", "none"):
            raise ModelError(f"model.pool must be one of max, avg, none, got {pool!r}")
        in_ch, height, width = (int(s) for s in input_shape)
        pad = kernel_size // 2 if padding == "same" else 0
        blocks: list[nn.Module] = []
        for i, out_ch in enumerate(channels):
            new_h = conv_out(height, kernel_size, stride, pad)
            new_w = conv_out(width, kernel_size, stride, pad)
            if new_h < 1 or new_w < 1:
                raise ModelError(
                    f"model.channels block {i + 1} leaves no pixels: a {height}×{width} input with "
                    f"kernel_size {kernel_size}, stride {stride} and padding '{padding}' gives "
                    f"{new_h}×{new_w}; use fewer channels entries, padding 'same' or a smaller "
                    "kernel"
                )
            layers: list[nn.Module] = [
                nn.Conv2d(in_ch, int(out_ch), kernel_size, stride, pad, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(out_ch)))
            layers.append(make_activation(activation))
            height, width = new_h, new_w
            if pool != "none" and height >= 2 and width >= 2:
                layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                height, width = height // 2, width // 2
            if dropout > 0:
                layers.append(nn.Dropout2d(dropout))
            blocks.append(nn.Sequential(*layers))
            in_ch = int(out_ch)
        self.features = nn.Sequential(*blocks)
        flat_h, flat_w = min(height, MAX_FLAT_SIDE), min(width, MAX_FLAT_SIDE)
        self.squeeze = (
            nn.AdaptiveAvgPool2d((flat_h, flat_w))
            if (flat_h, flat_w) != (height, width)
            else nn.Identity()
        )
        self.head = DenseHead(
            in_ch * flat_h * flat_w, head_sizes, n_outputs, activation, dropout, batch_norm
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, channels, height, width)
        x = self.features(x)  # (batch, channels[-1], h', w')
        x = self.squeeze(x)  # (batch, channels[-1], ≤4, ≤4)
        return self.head(x.flatten(1))  # (batch, n_outputs)
