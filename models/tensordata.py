"""What a model trains on and where: ``TensorData`` (inputs, targets, sequence lengths), the
device a config names, and seeding every random source."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from orchestrator.errors import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def crop_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """A batch of sequences ``(B, T, F)`` cut after its longest length: padding per batch."""
    if lengths is None or x.dim() != 3 or len(lengths) == 0:
        return x
    longest = int(lengths.max())
    return x[:, : max(longest, 1)] if longest < x.shape[1] else x


@dataclass
class TensorData:
    """Model inputs ``x``, targets ``y`` and, for sequences, valid ``lengths`` (int64)."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: torch.Tensor) -> TensorData:
        """The samples at ``idx`` (an index tensor), sequences cut after their longest length."""
        lengths = None if self.lengths is None else self.lengths[idx]
        return TensorData(crop_padding(self.x[idx], lengths), self.y[idx], lengths)

    def to(self, device: torch.device | str) -> TensorData:
        """On ``device``; from the CPU to a GPU through pinned (page-locked) host memory, so
        the copy is one asynchronous DMA transfer."""
        device = torch.device(device)
        if device.type == "cuda" and self.x.device.type == "cpu":
            return self.pin_memory()._to(device, non_blocking=True)
        return self._to(device)

    def _to(self, device: torch.device, non_blocking: bool = False) -> TensorData:
        lengths = (
            None if self.lengths is None else self.lengths.to(device, non_blocking=non_blocking)
        )
        x, y = (
            self.x.to(device, non_blocking=non_blocking),
            self.y.to(device, non_blocking=non_blocking),
        )
        return TensorData(x, y, lengths)

    def pin_memory(self) -> TensorData:
        """A copy in pinned host memory (needs a CUDA build of torch and a GPU)."""
        lengths = None if self.lengths is None else self.lengths.pin_memory()
        return TensorData(self.x.pin_memory(), self.y.pin_memory(), lengths)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``training.precision`` on ``device``; None for full precision.

    ``auto`` is bf16 on a GPU that supports it, fp16 on an older GPU, and fp32 on the CPU.
    bf16 and fp16 also run on the CPU (torch's CPU autocast), mainly to test these paths.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision not in PRECISIONS:
        raise ConfigError(
            f"training.precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}"
        )
    return PRECISIONS[precision]


def resolve_device(name: str | None) -> torch.device:
    name = name or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but no CUDA device is available; use 'auto'")
    return torch.device(name)
