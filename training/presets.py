"""What the network is fed, in training and in evaluation, side by side (torchvision's presets).

Both start from the images ``model.core.preprocessing.prepare`` decoded once (uint8, the model's preset:
crop, equalisation, size), so training and serving share every step up to here. Training then
augments on the device; evaluation feeds the images as the served runtime does (``to_batch``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.augment import LEVELS, augment
from training.dataset import as_input


@dataclass(frozen=True)
class TrainPreset:
    level: str = "basic"  # one of training.augment.LEVELS
    hflip: bool = False

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown augmentation {self.level!r}; expected one of {LEVELS}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 ``(N, S, S)`` -> augmented float ``(N, 1, S, S)`` in [0, 1], on the images' device."""
        return augment(as_input(images), self.level, generator, self.hflip)


@dataclass(frozen=True)
class EvalPreset:
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, S, S)`` -> float ``(N, 1, S, S)`` in [0, 1], as served."""
        return as_input(images)
