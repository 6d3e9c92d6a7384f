"""Augmentation for reconstruction: the model learns to rebuild whatever it is shown.

Flips, small shifts (edge pixels replicated, so no black borders to learn) and a light
brightness/contrast jitter, applied per sample to a whole batch tensor. Validation images
are never augmented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(
    batch: torch.Tensor, generator: torch.Generator, max_shift: int, jitter: float = 0.1
) -> torch.Tensor:
    """(n, 3, S, S) in [0, 1] -> augmented copy, randomness drawn from ``generator``."""
    n, _, size, _ = batch.shape
    out = batch.clone()
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    if max_shift > 0:
        padded = F.pad(out, (max_shift,) * 4, mode="replicate")
        offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
        out = torch.stack(
            [padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets)]
        )
    if jitter > 0:
        factors = 1 + (torch.rand(n, 2, 1, 1, generator=generator) * 2 - 1) * jitter
        brightness, contrast = factors[:, :1], factors[:, 1:]
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * contrast + mean) * brightness
    return out.clamp_(0, 1)


def random_view(batch: torch.Tensor, generator: torch.Generator, min_scale: float = 0.6,
                jitter: float = 0.3) -> torch.Tensor:
    """A strongly augmented view of each image: random zoomed crop (area >= ``min_scale``),
    flip, brightness/contrast jitter. Two views of one image are what the invariance term
    pulls together."""
    n = len(batch)
    zoom = torch.sqrt(min_scale + (1 - min_scale) * torch.rand(n, generator=generator))
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - zoom)[:, None]
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = zoom * flip
    theta[:, 1, 1] = zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    factors = 1 + (torch.rand(n, 2, 1, 1, generator=generator) * 2 - 1) * jitter
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * factors[:, 1:] + mean) * factors[:, :1]
    return out.clamp_(0, 1)
