"""Command-line flags shared by the tools that refit part of an existing checkpoint on its own splits
(``training.gate``, ``training.operating_point``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_checkpoint_refit_args(parser: argparse.ArgumentParser, what: str) -> None:
    """--checkpoint, --data, --manifest, --val-fold, --test-fold, --write, --half, --threads."""
    add = parser.add_argument
    add("--checkpoint", type=Path, required=True, help="weights (.safetensors)")
    add("--data", type=Path, required=True, help="the image folder the model was trained on")
    add("--manifest", type=Path, required=True, help="its manifest.csv (training.data), with folds")
    add("--val-fold", type=int, default=1, help="the model's validation fold (default: %(default)s)")
    add("--test-fold", type=int, default=0, help="the model's test fold (default: %(default)s)")
    add("--write", action="store_true", help=f"store the {what} in --checkpoint (default: off)")
    add("--half", action="store_true", help="with --write: fp16 weights (default: off)")
    add("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
