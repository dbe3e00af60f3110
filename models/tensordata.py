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
        lengths = None if self.lengths is None else self.lengths.to(device)
        return TensorData(self.x.to(device), self.y.to(device), lengths)


def resolve_device(name: str | None) -> torch.device:
    name = name or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but no CUDA device is available; use 'auto'")
    return torch.device(name)
