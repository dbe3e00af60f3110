"""Batched random image augmentation on ``(B, C, H, W)`` tensors (training batches only)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from orchestrator.config import AugmentConfig
from orchestrator.errors import DataError


def augment_images(
    batch: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Random rotation, shift and flips: one ``affine_grid`` + ``grid_sample`` per batch."""
    if not cfg.enabled:
        return batch
    if batch.dim() != 4:
        raise DataError(f"augment_images expects (B, C, H, W), got shape {tuple(batch.shape)}")
    b, _, h, w = batch.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        u = torch.rand(b, generator=generator, device=generator.device, dtype=torch.float32)
        return (low + (high - low) * u).to(device=batch.device, dtype=torch.float32)

    def flips(enabled: bool) -> torch.Tensor:
        signs = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
        return signs if enabled else torch.ones_like(signs)

    angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
    # grid coordinates span 2 units per axis, so a shift fraction s moves by 2 s
    tx, ty = uniform(-2 * cfg.shift, 2 * cfg.shift), uniform(-2 * cfg.shift, 2 * cfg.shift)
    sx, sy = flips(cfg.hflip), flips(cfg.vflip)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # rotation in pixel space expressed in normalised coordinates of a possibly non-square image
    theta = torch.stack(
        [
            torch.stack([cos * sx, -sin * sy * (h / w), tx], dim=1),
            torch.stack([sin * sx * (w / h), cos * sy, ty], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    x = batch.float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(batch.dtype)
