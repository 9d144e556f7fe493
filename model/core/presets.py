"""The named, versioned preprocessing presets: how a model's network input is made from an image.

One definition for training, evaluation and serving (``metadata.json`` names the preset by its id).
Changing any field of a preset means a new version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Preset:
    """How raw bytes become the network input. Changing any field means a new version."""

    name: str
    version: int
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Share of the width and of the height cut from each side before resizing: film borders, side
    # markers, burnt-in text and collimation edges tell a hospital apart, not a disease.
    crop: float = 0.0
    # Per-image histogram equalisation after resizing, so one site's film, exposure and
    # post-processing (some sources ship CLAHE-enhanced images) look like another's.
    equalize: bool = False
    # v3: the classifier sees the lung fields ``model.core.lung_fields`` found, not the film around them.
    # "crop": their bounding box grown by ``lung_margin`` of its size on each side; "mask": the same box
    # with everything outside the (slightly grown) lung fields set to black.
    lungs: str = ""
    lung_margin: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def decode_size(self) -> int:
        """The least side the decoder must keep for this preset (JPEGs are decoded at a reduced scale):
        the lung box can be half the image."""
        if self.lungs:
            return 2 * self.size
        return math.ceil(self.size / (1.0 - 2.0 * self.crop))


PRESETS: Final[dict[str, Preset]] = {
    p.id: p
    for p in (
        Preset("xray-gray-224", 1, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        # InceptionV3's ImageNet weights expect inputs scaled to [-1, 1].
        Preset("xray-gray-299", 1, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        # v2: against the source shortcuts measured on cxr-multisource (see training.loso).
        Preset("xray-gray-224", 2, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), crop=0.08, equalize=True),
        Preset("xray-gray-299", 2, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop=0.08, equalize=True),
        # v3: the lungs, against the film around them (issue 23: the source is still in view in v2).
        *(
            Preset(name, 3, size, mean, std, equalize=True, lungs=lungs, lung_margin=0.06)
            for size, mean, std in ((224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), (299, (0.5,) * 3, (0.5,) * 3))
            for name, lungs in ((f"xray-gray-{size}", "crop"), (f"xray-lungs-{size}", "mask"))
        ),
    )
}


def get_preset(preset_id: str) -> Preset:
    try:
        return PRESETS[preset_id]
    except KeyError as exc:
        raise ValueError(f"unknown preprocessing preset {preset_id!r}; known: {sorted(PRESETS)}") from exc
