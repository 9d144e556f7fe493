"""In-memory X-ray datasets decoded with the serving preprocessing, plus training augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from model.preprocessing import decode_gray
from training.data import Record


def augmentation(hflip: bool = False) -> v2.Compose:
    """Chest-X-ray-appropriate: small geometry and exposure changes; no flip by default (the heart is left)."""
    steps: list[v2.Transform] = [
        v2.RandomAffine(degrees=7, translate=(0.06, 0.06), scale=(0.9, 1.1)),
        v2.ColorJitter(brightness=0.2, contrast=0.2),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class XrayDataset(Dataset[tuple[torch.Tensor, int]]):
    """Decodes every image once (the serving decoder) and keeps uint8 arrays in memory."""

    def __init__(
        self,
        root: Path,
        records: Sequence[Record],
        labels: Sequence[str],
        size: int,
        transform: v2.Compose | None = None,
    ) -> None:
        self.records = list(records)
        self.targets = torch.tensor([list(labels).index(r.label) for r in self.records], dtype=torch.long)
        self.images = torch.from_numpy(
            np.stack([decode_gray((root / r.path).read_bytes(), size) for r in self.records])
            if self.records
            else np.zeros((0, size, size), np.uint8)
        )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].unsqueeze(0).float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image).clamp_(0.0, 1.0)
        return image, int(self.targets[index])
