"""Training augmentation, batched on the training device (one call per batch, no per-image loop).

``basic`` is small geometry and exposure changes: the recipe the first bundled model was trained with.
``strong`` adds what differs between hospitals rather than between diseases: film response (gamma),
detector sharpness (blur), quantum noise and resolution (down- and up-sampling; one source's images
only exist at 224 px). JPEG quality is not varied: every training source was already re-encoded as
JPEG quality 90 when the data was prepared, so it tells no source apart. No horizontal flip by
default: the heart is on the left.
"""

from __future__ import annotations

import math
from typing import Final

import torch
import torch.nn.functional as F

LEVELS: Final = ("none", "basic", "strong")


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    hflip: bool,
    degrees: float = 7.0,
    scale: tuple[float, float] = (0.9, 1.1),
    shift: float = 0.12,
) -> torch.Tensor:
    """The same random geometry for every channel of ``x``: rotation +-``degrees``, scale in ``scale``,
    translation +-``shift`` (affine_grid's [-1, 1] coordinates: 0.12 is 6 % of the side), zero fill
    (a film's black surround), a horizontal flip on half of them with ``hflip``."""
    n, device = x.shape[0], x.device
    angle = _uniform(n, -degrees, degrees, generator, device) * (math.pi / 180.0)
    factor = _uniform(n, scale[0], scale[1], generator, device)
    offset = _uniform(2 * n, -shift, shift, generator, device).view(n, 2)
    flip = torch.ones(n, device=device)
    if hflip:
        flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -flip, flip)
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, offset[:, 0]], dim=1), torch.stack([sin * flip, cos, offset[:, 1]], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _affine(x: torch.Tensor, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """Rotation +-7 degrees, translation +-6 %, scale 0.9-1.1."""
    return random_affine(x, generator, hflip)


def _exposure(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness and contrast each +-20 %."""
    n, device = x.shape[0], x.device
    x = x * _uniform(n, 0.8, 1.2, generator, device).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(n, 0.8, 1.2, generator, device).view(n, 1, 1, 1) + mean


def _gamma(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, device = x.shape[0], x.device
    gamma = torch.exp(_uniform(n, math.log(0.7), math.log(1.5), generator, device)).view(n, 1, 1, 1)
    return x.clamp(1e-4, 1.0).pow(gamma)


def _blur(x: torch.Tensor, generator: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """Gaussian blur of sigma 0.4-1.5 px on a random ``p`` of the batch (one grouped convolution)."""
    n, device = x.shape[0], x.device
    sigma = _uniform(n, 0.4, 1.5, generator, device)
    chosen = torch.rand(n, generator=generator, device=device) < p
    offsets = torch.arange(-3, 4, device=device, dtype=x.dtype)
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).to(x.dtype) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (offsets == 0).to(x.dtype).expand(n, -1)
    kernel = torch.where(chosen.view(-1, 1), kernel, identity)
    planes = x.transpose(0, 1)  # (1, N, H, W): each image is its own group
    planes = F.conv2d(F.pad(planes, (3, 3, 0, 0), mode="replicate"), kernel.view(n, 1, 1, 7), groups=n)
    planes = F.conv2d(F.pad(planes, (0, 0, 3, 3), mode="replicate"), kernel.view(n, 1, 7, 1), groups=n)
    return planes.transpose(0, 1)


def _resolution(x: torch.Tensor, generator: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """A random ``p`` of the batch goes down to 50-90 % of its size and back (one factor per batch)."""
    n, size = x.shape[0], x.shape[-1]
    chosen = torch.rand(n, generator=generator, device=x.device) < p
    if not bool(chosen.any()):
        return x
    factor = float(_uniform(1, 0.5, 0.9, generator, x.device))
    low = F.interpolate(x[chosen], size=max(8, round(size * factor)), mode="bilinear", antialias=True)
    out = x.clone()
    out[chosen] = F.interpolate(low, size=size, mode="bilinear")
    return out


def _noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, device = x.shape[0], x.device
    std = _uniform(n, 0.0, 0.03, generator, device).view(n, 1, 1, 1)
    return x + std * torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)


def augment(x: torch.Tensor, level: str, generator: torch.Generator, hflip: bool = False) -> torch.Tensor:
    """``x``: ``(N, 1, H, W)`` in [0, 1] on ``generator``'s device; returns the same shape, in [0, 1]."""
    if level not in LEVELS:
        raise ValueError(f"unknown augmentation {level!r}; expected one of {LEVELS}")
    if level == "none" or not len(x):
        return x
    x = _exposure(_affine(x, generator, hflip), generator).clamp(0.0, 1.0)
    if level == "strong":
        x = _noise(_resolution(_blur(_gamma(x, generator), generator), generator), generator)
    return x.clamp(0.0, 1.0)
