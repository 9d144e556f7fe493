"""Named training recipes against source shortcuts: each adds one change to the one before it, except
the lung-centred ones (``LUNG_RECIPES``), which are ``crop-equalize`` with preset v3 instead of v2.

A recipe is a list of ``training.train`` flags; the preset flag depends on the arch's input size.
``training.loso`` compares them under leave-sources-out, one row each.
"""

from __future__ import annotations

from typing import Final

from model.builder.architectures import get_arch
from model.core.presets import get_preset

RECIPES: Final[dict[str, str]] = {
    "baseline": "the first bundled model's recipe: preset v1, basic augmentation, class-weighted loss",
    "crop-equalize": "+ preset v2: 8 % border crop and per-image histogram equalisation",
    "strong-aug": "+ gamma, blur, noise and resolution augmentation",
    "source-balanced": "+ sampling every source equally within each label (no loss weights)",
    "source-adversary": "+ a gradient-reversed source classifier on the pooled features (weight 0.3)",
}
# Recipe -> the preset (by input size) it puts in crop-equalize's place.
LUNG_RECIPES: Final[dict[str, tuple[str, str]]] = {
    "lung-crop": ("xray-gray-{size}-v3", "crop-equalize with preset v3: the lung fields' bounding box"),
    "lung-mask": ("xray-lungs-{size}-v3", "crop-equalize with preset v3, masked: black outside the lung fields"),
}


def recipe_args(name: str, arch: str) -> list[str]:
    """The ``training.train`` flags of recipe ``name`` for ``arch``."""
    size = get_preset(get_arch(arch).preset).size
    if name in LUNG_RECIPES:
        return ["--preset", LUNG_RECIPES[name][0].format(size=size)]
    if name not in RECIPES:
        known = [*RECIPES, *LUNG_RECIPES]
        raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(known)}")
    steps = list(RECIPES)[: list(RECIPES).index(name) + 1]
    flags: list[str] = []
    if "crop-equalize" in steps:
        flags += ["--preset", f"xray-gray-{size}-v2"]
    if "strong-aug" in steps:
        flags += ["--augment", "strong"]
    if "source-balanced" in steps:
        flags += ["--balance", "source"]
    if "source-adversary" in steps:
        flags += ["--source-adversary", "0.3"]
    return flags
