"""In-memory X-ray images decoded with the serving preprocessing, and the order training visits them in."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import torch

from model.core.errors import GateRefusedError
from model.core.lung_fields import LungFinder
from model.core.preprocessing import prepare
from model.core.presets import Preset
from training.data import Record

BALANCES: Final = ("class", "source")
# A (source, label) cell smaller than this is sampled as if it had this many images, so that e.g. the
# 11 no_findings images of one collection are not each drawn dozens of times an epoch.
MIN_CELL: Final = 30


class XrayImages:
    """Decodes every image once (the serving decoder, ``preset``) and keeps uint8 arrays in memory.

    With a lung-centred preset (v3, ``lungs``: the lung-field network), an image whose lung fields the
    gate refuses (``no_lung_fields``, ``not_upright``) is left out, as serving would refuse it:
    ``refused`` lists them."""

    def __init__(
        self,
        root: Path,
        records: Sequence[Record],
        labels: Sequence[str],
        preset: Preset,
        lungs: LungFinder | None = None,
    ) -> None:
        arrays, kept, self.refused = [], [], []
        for record in records:
            try:
                arrays.append(prepare((root / record.path).read_bytes(), preset, lungs))
                kept.append(record)
            except GateRefusedError as exc:
                self.refused.append((record, exc.reason))
        self.records = kept
        self.targets = torch.tensor([list(labels).index(r.label) for r in self.records], dtype=torch.long)
        self.images = torch.from_numpy(
            np.stack(arrays) if arrays else np.zeros((0, preset.size, preset.size), np.uint8)
        )
        self.sources = sorted({r.source for r in self.records})
        self.source_ids = torch.tensor([self.sources.index(r.source) for r in self.records], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.records)

    def on(self, device: torch.device) -> XrayImages:
        """The same images with their tensors on ``device`` (this one is left where it is)."""
        moved = copy.copy(self)
        moved.images, moved.targets, moved.source_ids = (
            self.images.to(device),
            self.targets.to(device),
            self.source_ids.to(device),
        )
        return moved


def as_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, S, S)`` -> the network input, float ``(N, 1, S, S)`` in [0, 1]."""
    return images.unsqueeze(1).float().div_(255.0)


def source_balanced_weights(records: Sequence[Record]) -> torch.Tensor:
    """Sampling weights that give every label the same share and, within a label, every source the
    same share (cells under ``MIN_CELL`` images count as ``MIN_CELL``)."""
    cells = Counter((r.label, r.source) for r in records)
    sources_of = Counter(label for label, _ in cells)
    return torch.tensor(
        [1.0 / (sources_of[r.label] * max(MIN_CELL, cells[(r.label, r.source)])) for r in records],
        dtype=torch.double,
    )


def epoch_order(
    records: Sequence[Record], balance: str, generator: torch.Generator, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Indices for one epoch (as many as there are images): a permutation, or a weighted draw."""
    if balance not in BALANCES:
        raise ValueError(f"unknown balance {balance!r}; expected one of {BALANCES}")
    if balance == "class":
        return torch.randperm(len(records), generator=generator)
    if weights is None:
        weights = source_balanced_weights(records)
    return torch.multinomial(weights, len(records), replacement=True, generator=generator)


def steps_per_epoch(images: int, batch_size: int) -> int:
    """How many batches ``batches`` makes of ``images`` indices: the last partial one is dropped when
    there is more than one (no tiny last batch for batch norm), and kept when it is the only one."""
    return images // batch_size if images > batch_size else 1


def batches(order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for step in range(steps_per_epoch(len(order), batch_size)):
        yield order[step * batch_size : (step + 1) * batch_size]
