"""fp16 on the GPU: the guard that decides whether the endpoint serves the TorchScript graph in half
precision (``model.serving.gpu``), recorded in ``metadata.json`` (``fp16``).

    python -m model.builder.half --artifacts build/model/artifacts --data DIR --manifest runs/manifest.csv \\
        [--device cuda] [--package build/model/model.tar.gz]

The served graph in fp32 and in fp16 (channels-last) run side by side on the test fold of the images
the model was trained on, and fp16 is served only if it passes the rule int8 passes on the CPU
(``model.builder.agreement``): labels and gate decisions agree on >= 99 % of images, COVID ROC AUC moved by
<= 0.005. The batch-1 times of both, through the served backend (a CUDA graph on a GPU), are
recorded beside the verdict. It runs on the CPU too (``--device cpu``), where half precision is slow:
that checks the arithmetic, not the speed, and the CPU never serves fp16.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from model.builder.agreement import Uint8Images, compare, guard_parser, ms_per_image, publish, read_folds, run_batched
from model.core.contract import TORCHSCRIPT_FILE
from model.serving.backends import TorchScriptBackend, load_lungs
from model.serving.metadata import ModelMetadata

logger = logging.getLogger(__name__)


def guard(artifacts: Path, images: Uint8Images, truth: list[str], device: str, seconds: float = 3.0) -> dict[str, Any]:
    """fp32 and fp16 TorchScript side by side on ``images`` (labelled ``truth``) on ``device``: the
    figures and the verdict."""
    fp32 = TorchScriptBackend(artifacts / TORCHSCRIPT_FILE, device=device)
    half = TorchScriptBackend(artifacts / TORCHSCRIPT_FILE, half=True, device=device)
    figures = compare(
        ModelMetadata.read(artifacts), truth, run_batched(fp32, images), run_batched(half, images), "fp16"
    )
    ms = {"fp32": ms_per_image(fp32, images[0], seconds), "fp16": ms_per_image(half, images[0], seconds)}
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    return {
        "file": TORCHSCRIPT_FILE,
        "method": "TorchScript cast to fp16 at load, channels-last; a CUDA graph at batch 1",
        "device": where,
        **figures,
        "ms_per_image_batch1": {**ms, "speedup": ms["fp32"] / ms["fp16"]},
    }


def record(artifacts: Path, verdict: dict[str, Any]) -> None:
    """Store the verdict in ``metadata.json``: a GPU serves fp16 only if ``served`` is true."""
    meta = ModelMetadata.read(artifacts)
    meta.fp16 = verdict
    meta.write(artifacts)


def main(args: argparse.Namespace) -> dict[str, Any]:
    meta = ModelMetadata.read(args.artifacts)
    lungs = load_lungs(args.artifacts, meta) if meta.preset_needs_lungs else None
    _, test = read_folds(args.data, args.manifest, meta, args.test_fold, args.val_fold, 0, lungs)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    verdict = guard(args.artifacts, test.images, test.labels, device, args.seconds)
    print(json.dumps(publish(args, verdict, record), indent=2))  # noqa: T201 - command-line output
    return verdict


def get_args_parser() -> argparse.ArgumentParser:
    parser = guard_parser(__doc__)
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per path (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
