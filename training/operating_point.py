"""The COVID operating point: the threshold on p(covid) that keeps sensitivity at a target on
validation data, and what it costs in specificity.

    python -m training.operating_point --checkpoint model/default/model.safetensors \\
        --data ../shared/data/ozturk-3class --manifest runs/ozturk/manifest.csv [--write --half]

Chosen on the validation split (``--val-fold``), reported on validation and test, stored with
``--write`` in the checkpoint's metadata (``operating_point``); the served model then calls covid at
``p(covid) >= threshold`` and says so in every answer (``model.covid_threshold``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from model.builder.architectures import XrayNet
from model.builder.checkpoint import load_checkpoint, save_checkpoint
from model.core.preprocessing import prepare
from model.core.presets import get_preset
from model.serving.metadata import ModelMetadata
from model.serving.policy import softmax
from training.cli import add_checkpoint_refit_args
from training.data import read_manifest
from training.gate import logits_of, pooled_features

logger = logging.getLogger(__name__)

TARGET_SENSITIVITY: Final = 0.90
Floats = npt.NDArray[np.float64]


def choose_threshold(is_covid: npt.NDArray[np.bool_], p_covid: Floats, target: float = TARGET_SENSITIVITY) -> float:
    """The highest threshold whose sensitivity on these images is at least ``target``: the most
    specific one that keeps the target."""
    positives = np.sort(p_covid[is_covid])[::-1]
    if len(positives) == 0:
        raise ValueError("no COVID images to choose the operating point on")
    needed = int(np.ceil(target * len(positives)))
    return float(positives[needed - 1])


def rates(is_covid: npt.NDArray[np.bool_], p_covid: Floats, threshold: float) -> dict[str, float]:
    called = p_covid >= threshold
    return {
        "sensitivity": float(called[is_covid].mean()) if is_covid.any() else float("nan"),
        "specificity": float((~called[~is_covid]).mean()) if (~is_covid).any() else float("nan"),
    }


def choose_policy(is_covid: npt.NDArray[np.bool_], p_covid: Floats, target: float) -> dict[str, Any]:
    """The operating point for ``ModelMetadata.operating_point``, chosen on these validation images."""
    threshold = choose_threshold(is_covid, p_covid, target)
    return {
        "label": "covid",
        "threshold": threshold,
        "target_sensitivity": target,
        "chosen_on": {"split": "val", "images": len(p_covid), **rates(is_covid, p_covid, threshold)},
    }


def covid_probabilities(net: XrayNet, meta: ModelMetadata, data: Path, paths: list[str]) -> Floats:
    preset = get_preset(meta.preset)
    images = np.stack([prepare((data / p).read_bytes(), preset) for p in paths])
    probs = softmax(logits_of(net, pooled_features(net, images)), meta.temperature)
    return probs[:, meta.labels.index("covid")].astype(np.float64)


def main(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    net, meta = load_checkpoint(args.checkpoint)
    net.float()
    records = read_manifest(args.manifest)
    scored = {}
    for split, fold in (("val", args.val_fold), ("test", args.test_fold)):
        chosen = [r for r in records if r.fold == fold]
        is_covid = np.array([r.label == "covid" for r in chosen])
        scored[split] = (is_covid, covid_probabilities(net, meta, args.data, [r.path for r in chosen]))
    policy = choose_policy(*scored["val"], args.target)
    report: dict[str, Any] = {
        split: {
            "images": len(p),
            "at_threshold": rates(is_covid, p, policy["threshold"]),
            "at_0.5": rates(is_covid, p, 0.5),
        }
        for split, (is_covid, p) in scored.items()
    }
    report["operating_point"] = policy
    if args.write:
        meta.operating_point = policy
        save_checkpoint(net, meta, args.checkpoint, half=args.half)
    print(json.dumps(report, indent=2))
    return report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_refit_args(parser, "operating point")
    parser.add_argument(
        "--target", type=float, default=TARGET_SENSITIVITY, help="COVID sensitivity to keep (default: %(default)s)"
    )
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
