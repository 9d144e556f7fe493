"""Fit a model's out-of-distribution gate on its training split, and measure it on what it must refuse.

    python -m training.gate --checkpoint model/default/model.safetensors --data ../shared/data/ozturk-3class \\
        --manifest runs/ozturk/manifest.csv --ood ../shared/data/cxr-ood --out runs/gate --write

The gate (``model.builder.architectures.FeatureGate``) is a Mahalanobis distance on the pooled features:
class means and one shared covariance from the **training split** (Ledoit-Wolf shrinkage, since 512 to
2,048 features meet a few hundred images), and a threshold chosen on the **validation split** so that
at most ``--max-refusal`` of its X-rays are refused, counting both refusals of the served rule
(``model.serving.policy.gate_decisions``: ``not_a_chest_xray`` and ``not_upright``). No negative example is
used to fit it, so every category of negatives (``training.negatives``) is held out: they only measure
it, against the test split's X-rays. ``training.train`` fits the gate of every model it trains the
same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from model.builder.architectures import ExportWrapper, XrayNet
from model.builder.checkpoint import load_checkpoint, save_checkpoint
from model.builder.lung_network import load_finder
from model.core.errors import GateRefusedError
from model.core.preprocessing import gated_prepare, to_batch
from model.core.presets import get_preset
from model.serving.policy import ACCEPTED, NOT_UPRIGHT, gate_decisions
from training.cli import add_checkpoint_refit_args
from training.data import read_manifest, split_of

logger = logging.getLogger(__name__)

MAX_REFUSAL: Final = 0.01
# A refused image is called a turned chest X-ray only if a turned copy scores like a typical one.
UPRIGHT_QUANTILE: Final = 0.9
METHOD: Final = "mahalanobis: pooled features, class means, shared Ledoit-Wolf covariance, nearest class"
_BATCH: Final = 32

Uint8Images = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]


@torch.no_grad()
def pooled_features(net: XrayNet, images: Uint8Images, device: torch.device | None = None) -> Floats:
    """``(N, S, S)`` uint8 images -> ``(N, C)`` pooled features, in eval mode."""
    net.eval()
    device = device or next(net.parameters()).device
    out = [
        net.pooled(torch.from_numpy(to_batch(list(images[i : i + _BATCH]))).to(device)).float().cpu().numpy()
        for i in range(0, len(images), _BATCH)
    ]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, net.classifier.in_features))


@torch.no_grad()
def logits_of(net: XrayNet, features: Floats) -> npt.NDArray[np.float32]:
    """The classifier's logits from ``pooled_features`` (equal to ``net(x)`` in eval mode)."""
    device = net.classifier.weight.device
    logits: npt.NDArray[np.float32] = net.classifier(torch.from_numpy(features).float().to(device)).cpu().numpy()
    return logits


def fit_statistics(features: Floats, targets: npt.NDArray[np.int64], num_classes: int) -> tuple[Floats, Floats]:
    """``(whiten, centers)`` for ``FeatureGate``: ``whiten @ whiten.T`` is the inverse shrunk covariance
    of the class-centred features; a class without images takes the overall mean."""
    overall = features.mean(axis=0)
    means = np.stack(
        [features[targets == k].mean(axis=0) if (targets == k).any() else overall for k in range(num_classes)]
    )
    centred = features - means[targets]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    floor = eigenvalues.max() * 1e-9  # the shrinkage keeps them positive; this guards the arithmetic only
    whiten = eigenvectors / np.sqrt(np.maximum(eigenvalues, floor))
    return whiten, means @ whiten


def install(net: XrayNet, whiten: Floats, centers: Floats) -> None:
    device = net.gate.whiten.device
    net.gate.whiten.copy_(torch.from_numpy(whiten).float().to(device))
    net.gate.centers.copy_(torch.from_numpy(centers).float().to(device))


@torch.no_grad()
def served_scores(net: XrayNet, images: Uint8Images) -> tuple[Floats, Floats]:
    """``gate_score`` and ``turned_gate_score`` of the served graph (eager ``ExportWrapper``)."""
    wrapper = ExportWrapper(net).eval()
    device = net.gate.whiten.device
    scores, turned = [], []
    for i in range(0, len(images), _BATCH):
        out = wrapper(torch.from_numpy(to_batch(list(images[i : i + _BATCH]))).to(device))
        scores.append(out[2].double().cpu().numpy())
        turned.append(out[3].double().cpu().numpy())
    return np.concatenate(scores), np.concatenate(turned)


def refused_count(scores: Floats, turned: Floats, threshold: float) -> int:
    """How many the served rule refuses (the upright threshold only names the reason)."""
    return int((gate_decisions(scores, turned, threshold) != ACCEPTED).sum())


def choose_threshold(scores: Floats, turned: Floats, max_refusal: float = MAX_REFUSAL) -> float:
    """The smallest threshold at which the served rule refuses at most ``max_refusal`` of these
    in-distribution images (or, if none does, the one that refuses fewest)."""
    if len(scores) == 0:
        raise ValueError("no validation images to choose the gate's threshold on")
    allowed = math.floor(max_refusal * len(scores))
    candidates = np.unique(scores)
    counts = np.array([refused_count(scores, turned, float(t)) for t in candidates])
    fitting = candidates[counts <= allowed]
    if len(fitting):
        return float(fitting.min())
    return float(candidates[counts == counts.min()].max())


def choose_threshold_per_source(scores: Floats, sources: Sequence[str], max_refusal: float = MAX_REFUSAL) -> float:
    """The smallest threshold at which no source has more than ``max_refusal`` of its images over it,
    a source of fewer than ``1 / max_refusal`` images being allowed one (else its single most unusual
    X-ray would set the threshold for everyone)."""
    if len(scores) == 0:
        raise ValueError("no validation images to choose the gate's threshold on")
    names = np.asarray(sources)
    threshold = -math.inf
    for source in sorted(set(sources)):
        mine = np.sort(scores[names == source])[::-1]
        allowed = max(1, math.floor(max_refusal * len(mine)))
        threshold = max(threshold, float(mine[allowed]) if allowed < len(mine) else float(mine[-1]))
    return threshold


def fit_gate(
    net: XrayNet,
    train_images: Uint8Images,
    train_targets: npt.NDArray[np.int64],
    val_images: Uint8Images,
    max_refusal: float = MAX_REFUSAL,
    val_sources: Sequence[str] | None = None,
    turned: bool = True,
) -> dict[str, Any]:
    """Fit the gate into ``net`` and return its policy for ``ModelMetadata.gate``. ``val_sources``: choose
    the threshold per source (``choose_threshold_per_source``); ``turned=False``: for a graph served with
    the lung-field network, which scores no turned copies."""
    features = pooled_features(net, train_images)
    install(net, *fit_statistics(features, train_targets, net.classifier.out_features))
    val_scores, val_turned = served_scores(net, val_images)
    if not turned:
        val_turned = val_scores
    if val_sources is not None:
        threshold = choose_threshold_per_source(val_scores, val_sources, max_refusal)
    else:
        threshold = choose_threshold(val_scores, val_turned, max_refusal)
    return {
        "method": METHOD,
        "threshold": threshold,
        "upright_threshold": min(threshold, float(np.quantile(val_scores, UPRIGHT_QUANTILE))),
        "max_refusal": max_refusal,
        "per_source": val_sources is not None,
        "turned_copies": turned,
        "fitted_on": {"split": "train", "images": len(train_images)},
        "threshold_from": {
            "split": "val",
            "images": len(val_images),
            "refused": refused_count(val_scores, val_turned, threshold),
        },
    }


def category_report(inside: Floats, scores: Floats, turned: Floats, policy: dict[str, Any]) -> dict[str, Any]:
    """AUROC of the gate score against ``inside`` (in-distribution scores; refuse = positive) and the
    share the served rule refuses, in all and as ``not_upright``."""
    truth = np.r_[np.zeros(len(inside)), np.ones(len(scores))]
    decisions = gate_decisions(scores, turned, policy["threshold"], policy["upright_threshold"])
    return {
        "n": len(scores),
        "auroc": float(roc_auc_score(truth, np.r_[inside, scores])),
        "refused": float(np.mean(decisions != ACCEPTED)),
        "not_upright": float(np.mean(decisions == NOT_UPRIGHT)),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    from training.negatives import held_out_negatives

    torch.set_num_threads(args.threads)
    net, meta = load_checkpoint(args.checkpoint)
    net.float()
    preset = get_preset(meta.preset)
    lungs = load_finder(args.lungs) if args.lungs is not None else None
    records = read_manifest(args.manifest)
    arrays: dict[str, tuple[Uint8Images, Any]] = {}
    sources: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        chosen = [
            r for r in records if split_of(r.fold, args.test_fold, args.val_fold) == split and r.label in meta.labels
        ]
        inputs, kept = [], []
        for record in chosen:
            try:
                inputs.append(gated_prepare((args.data / record.path).read_bytes(), preset, lungs))
                kept.append(record)
            except GateRefusedError:  # the lung-field gate refuses it before the feature gate sees it
                continue
        arrays[split] = (np.stack(inputs), np.array([meta.labels.index(r.label) for r in kept]))
        sources[split] = [r.source for r in kept]
    policy = fit_gate(
        net,
        arrays["train"][0],
        arrays["train"][1],
        arrays["val"][0],
        args.max_refusal,
        sources["val"] if args.per_source else None,
        turned=lungs is None,
    )
    threshold = policy["threshold"]
    test_images = arrays["test"][0]
    inside, inside_turned = served_scores(net, test_images)
    if lungs is not None:
        inside_turned = inside
    policy["test"] = {"images": len(inside), "refused": refused_count(inside, inside_turned, threshold)}
    report: dict[str, Any] = {"policy": policy, "categories": {}}
    # With --lungs these are the feature gate's figures alone: training.gate_table measures the served
    # package, lung-field gate included.
    for name, negatives in held_out_negatives(test_images, args.ood, preset).items():
        scores, turned = served_scores(net, negatives)
        report["categories"][name] = category_report(inside, scores, scores if lungs is not None else turned, policy)
    meta.gate = policy
    if args.write:
        save_checkpoint(net, meta, args.checkpoint, half=args.half)
        logger.info("wrote the fitted gate into %s", args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    return report


def format_report(report: dict[str, Any]) -> str:
    policy = report["policy"]
    lines = [
        f"threshold {policy['threshold']:.3f}: refuses {policy['threshold_from']['refused']} of "
        f"{policy['threshold_from']['images']} validation and {policy['test']['refused']} of "
        f"{policy['test']['images']} test X-rays",
        f"{'category':<14} {'n':>4} {'AUROC':>7} {'refused':>8} {'not_upright':>12}",
    ]
    for name, row in report["categories"].items():
        lines.append(
            f"{name:<14} {row['n']:>4} {row['auroc']:>7.4f} {row['refused']:>8.1%} {row['not_upright']:>12.1%}"
        )
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_refit_args(parser, "fitted gate")
    parser.add_argument("--ood", type=Path, default=None, help="cxr-ood folder (lateral/, ct/) (default: none)")
    parser.add_argument(
        "--max-refusal",
        type=float,
        default=MAX_REFUSAL,
        help="largest share of validation X-rays the gate may refuse (default: %(default)s)",
    )
    parser.add_argument(
        "--per-source",
        action="store_true",
        help="the threshold refuses at most --max-refusal of each source's validation X-rays (default: pooled)",
    )
    parser.add_argument(
        "--lungs",
        type=Path,
        default=None,
        help="fit for a package served with this lung-field network: what it refuses is left out, and no "
        "turned copies are scored (default: none)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/gate"), help="report folder (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
