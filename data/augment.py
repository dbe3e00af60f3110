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
    if cfg.enabled is not True:  # "auto" means off for images
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


def augment_series(
    batch: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Window slicing, scaling and jitter of ``(B, T, F)`` scaled sequences (training only).

    Window slicing keeps a random ``window_slice`` share of each series' valid steps and stretches
    it back over its length (linear interpolation); scaling multiplies each series by a factor
    drawn around 1; jitter adds Gaussian noise to every valid step. Padding stays 0.
    """
    if cfg.enabled is False:  # "auto" means on for sequences
        return batch
    if batch.dim() != 3:
        raise DataError(f"augment_series expects (B, T, F), got shape {tuple(batch.shape)}")
    b, t, _ = batch.shape
    device = batch.device
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.long, device=device)
    lengths = lengths.to(device).clamp(min=1, max=t)

    def draw(*shape: int, normal: bool = False) -> torch.Tensor:
        draw_fn = torch.randn if normal else torch.rand
        out = draw_fn(*shape, generator=generator, device=generator.device)
        return out.to(device=device, dtype=batch.dtype)

    steps = torch.arange(t, device=device).unsqueeze(0)  # (1, T)
    valid = (steps < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
    out = batch
    if cfg.window_slice < 1:
        span = lengths.to(batch.dtype)  # (B,)
        window = (span * cfg.window_slice).clamp(min=1.0)
        start = draw(b) * (span - window)  # (B,)
        stretch = (window - 1) / (span - 1).clamp(min=1.0)
        pos = start.unsqueeze(1) + steps.to(batch.dtype) * stretch.unsqueeze(1)  # (B, T)
        pos = torch.minimum(pos, (span - 1).unsqueeze(1))
        lo = pos.floor().long().clamp(0, t - 1)
        hi = (lo + 1).clamp(max=t - 1)
        frac = (pos - lo.to(batch.dtype)).unsqueeze(-1)  # (B, T, 1)
        gather = lambda idx: out.gather(1, idx.unsqueeze(-1).expand_as(out))  # noqa: E731
        out = gather(lo) * (1 - frac) + gather(hi) * frac
    if cfg.scaling > 0:
        out = out * (1 + cfg.scaling * draw(b, 1, 1, normal=True))
    if cfg.jitter > 0:
        out = out + cfg.jitter * draw(*batch.shape, normal=True)
    return out.masked_fill(~valid, 0.0)
