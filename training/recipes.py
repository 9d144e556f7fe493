"""Named training recipes against source shortcuts: each adds one change to the one before it.

A recipe is a list of ``training.train`` flags; the preset flag depends on the arch's input size.
``training.loso`` compares them under leave-sources-out, one row each.
"""

from __future__ import annotations

from typing import Final

from model.architectures import get_arch
from model.preprocessing import get_preset

RECIPES: Final[dict[str, str]] = {
    "baseline": "the first bundled model's recipe: preset v1, basic augmentation, class-weighted loss",
    "crop-equalize": "+ preset v2: 8 % border crop and per-image histogram equalisation",
    "strong-aug": "+ gamma, blur, noise and resolution augmentation",
    "source-balanced": "+ sampling every source equally within each label (no loss weights)",
    "source-adversary": "+ a gradient-reversed source classifier on the pooled features (weight 0.3)",
}


def recipe_args(name: str, arch: str) -> list[str]:
    """The ``training.train`` flags of recipe ``name`` for ``arch``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")
    steps = list(RECIPES)[: list(RECIPES).index(name) + 1]
    size = get_preset(get_arch(arch).preset).size
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
