"""Source-aware evaluation: how a model does on each source (hospital, collection) of a multi-source set.

    python -m training.sources --checkpoint model/default/model.safetensors \\
        --data ../shared/data/cxr-multisource --out runs/sources

Scores covid vs no_findings (a 3-class model's two probabilities renormalised, pneumonia left out) and
reports, per source: COVID sensitivity and specificity at the model's operating point and, where a
source holds both classes, the ROC AUC, each with a 95 % bootstrap interval that resamples patients,
not images. It also reports the **feature source probe**: the grouped cross-validated accuracy of a
linear probe that predicts the source from the model's pooled features (lower is better; chance is
the share of the largest source), how many images of each source the input gate refuses, and, with a
lung-field network (``--lungs``), the **share of the class activation inside the lung fields**: of the
predicted class's map, over what the network saw, per source and per class (against the share of the
input that is lung: what a map spread evenly would score).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from sklearn.metrics import roc_auc_score

from model.builder.architectures import ExportWrapper
from model.builder.checkpoint import load_checkpoint, read_checkpoint_metadata
from model.builder.lung_network import load_finder
from model.core.decoding import load_gray
from model.core.errors import GateRefusedError
from model.core.lung_fields import LungField, LungFinder, activation_inside, mask_in_box
from model.core.preprocessing import check_lungs, prepare_gray, seen_box, to_batch
from model.core.presets import Preset, get_preset
from model.serving.policy import ACCEPTED, gate_decisions, softmax
from training.data import Record, read_dataset
from training.gate import logits_of, pooled_features, served_scores

logger = logging.getLogger(__name__)

BOOTSTRAP: Final = 1000
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def bootstrap_ci(
    groups: Sequence[str], statistic: Callable[[Ints], float], resamples: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float] | None:
    """95 % percentile interval of ``statistic(indices)`` over resampled *groups* (patients): every
    image of a drawn patient comes along. None when no resample gives a finite value."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(group, []).append(index)
    members = list(by_group.values())
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(members), len(members))
        value = statistic(np.array([i for g in drawn for i in members[g]], dtype=np.int64))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _rate(hits: npt.NDArray[np.bool_]) -> float:
    return float(hits.mean()) if len(hits) else float("nan")


def _auc(y: Ints, scores: Floats) -> float:
    return float(roc_auc_score(y, scores)) if len(set(y.tolist())) == 2 else float("nan")


def source_report(y: Ints, p_covid: Floats, groups: Sequence[str], threshold: float) -> dict[str, Any]:
    """One source's figures: ``y`` 1 for covid, 0 for no_findings; covid is called at ``p >= threshold``."""
    called = p_covid >= threshold
    groups = list(groups)

    def figure(fn: Callable[[Ints], float]) -> dict[str, Any]:
        value = fn(np.arange(len(y)))
        return {"value": None if not np.isfinite(value) else value, "ci95": bootstrap_ci(groups, fn)}

    report: dict[str, Any] = {"n": len(y), "covid": int(y.sum()), "no_findings": int((y == 0).sum())}
    if report["covid"]:
        report["sensitivity"] = figure(lambda i: _rate(called[i][y[i] == 1]))
    if report["no_findings"]:
        report["specificity"] = figure(lambda i: _rate(~called[i][y[i] == 0]))
    if report["covid"] and report["no_findings"]:
        report["auc"] = figure(lambda i: _auc(y[i], p_covid[i]))
    return report


def feature_source_probe(
    features: Floats, sources: Sequence[str], groups: Sequence[str], folds: int = 5
) -> dict[str, Any]:
    """Grouped-CV accuracy of a linear probe predicting the source from pooled features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = sorted(set(sources))
    target = np.array([names.index(s) for s in sources])
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    scores = cross_val_score(probe, features, target, groups=list(groups), cv=splitter)
    return {
        "accuracy": float(scores.mean()),
        "chance": float(np.bincount(target).max() / len(target)),
        "sources": len(names),
    }


def score_images(
    checkpoint: Path, images: npt.NDArray[np.uint8]
) -> tuple[Floats, Floats, npt.NDArray[np.int8], list[str]]:
    """Calibrated probabilities, pooled features and gate decisions of the checkpoint's served graph."""
    net, meta = load_checkpoint(checkpoint)
    net.float()
    features = pooled_features(net, images)
    probs = softmax(logits_of(net, features), meta.temperature).astype(np.float64)
    scores, turned = served_scores(net, images)
    decisions = gate_decisions(scores, turned, meta.gate_threshold, meta.gate_upright_threshold)
    return probs, features, decisions, meta.labels


def decode(
    data: Path, records: Sequence[Record], preset: Preset, finder: LungFinder | None
) -> tuple[list[Record], npt.NDArray[np.uint8], list[npt.NDArray[np.bool_]], int]:
    """The images through the preset (left out where a v3 preset's lung gate refuses them), and, with
    ``finder``, each one's lung fields in the frame the network saw; how many were left out."""
    if preset.lungs and finder is None:
        raise SystemExit(f"preset {preset.id} crops to the lung fields: pass --lungs")
    kept, arrays, masks, refused = [], [], [], 0
    for record in records:
        gray = load_gray((data / record.path).read_bytes(), preset.decode_size)
        found: LungField | None = finder.find([gray])[0] if finder is not None else None
        if preset.lungs and found is not None:
            try:
                check_lungs(found)
            except GateRefusedError:
                refused += 1
                continue
        arrays.append(prepare_gray(gray, preset, found if preset.lungs else None))
        kept.append(record)
        if found is not None:
            masks.append(mask_in_box(found, seen_box(gray, preset, found), preset.size))
    return kept, np.stack(arrays), masks, refused


@torch.no_grad()
def lung_activation(
    checkpoint: Path, images: npt.NDArray[np.uint8], masks: Sequence[npt.NDArray[np.bool_]], probs: Floats
) -> Floats:
    """Per image: the share of the predicted class's activation map inside its lung fields."""
    net, _ = load_checkpoint(checkpoint)
    wrapper = ExportWrapper(net.float(), turned=False).eval()
    shares = []
    for start in range(0, len(images), 32):
        cams = wrapper(torch.from_numpy(to_batch(list(images[start : start + 32]))))[1].numpy()
        for offset, cam in enumerate(cams):
            index = start + offset
            shares.append(activation_inside(cam[int(probs[index].argmax())], masks[index]))
    return np.array(shares)


def activation_report(
    shares: Floats, masks: Sequence[npt.NDArray[np.bool_]], records: Sequence[Record]
) -> dict[str, Any]:
    lung_share = np.array([m.mean() for m in masks])

    def summary(rows: npt.NDArray[np.bool_]) -> dict[str, Any]:
        return {
            "n": int(rows.sum()),
            "inside": float(shares[rows].mean()),
            "lung_share": float(lung_share[rows].mean()),
        }

    every = np.ones(len(records), bool)
    return {
        "all": summary(every),
        "per_source": {
            s: summary(np.array([r.source == s for r in records])) for s in sorted({r.source for r in records})
        },
        "per_class": {
            c: summary(np.array([r.label == c for r in records])) for c in sorted({r.label for r in records})
        },
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    records, _ = read_dataset(args.data)
    preset = get_preset(read_checkpoint_metadata(args.checkpoint).preset)
    finder = load_finder(args.lungs) if args.lungs is not None and args.lungs.is_file() else None
    kept, images, masks, lung_refused = decode(
        args.data, [r for r in records if r.label in ("covid", "no_findings")], preset, finder
    )
    probs, features, decisions, labels = score_images(args.checkpoint, images)
    pair = probs[:, [labels.index("covid"), labels.index("no_findings")]]
    p_covid = pair[:, 0] / pair.sum(axis=1)
    y = np.array([int(r.label == "covid") for r in kept])
    sources = [r.source for r in kept]
    groups = [r.group for r in kept]
    report: dict[str, Any] = {"threshold": args.threshold, "per_source": {}, "pooled": {}}
    for source in sorted(set(sources)):
        rows = np.array([s == source for s in sources])
        entry = source_report(
            y[rows], p_covid[rows], [g for g, r in zip(groups, rows, strict=True) if r], args.threshold
        )
        entry["gate_refused"] = int((decisions[rows] != ACCEPTED).sum())
        report["per_source"][source] = entry
    unseen = np.array([s not in args.seen for s in sources])
    if unseen.any():
        report["unseen_sources"] = source_report(
            y[unseen], p_covid[unseen], [g for g, u in zip(groups, unseen, strict=True) if u], args.threshold
        )
    report["pooled"] = source_report(y, p_covid, groups, args.threshold)
    report["feature_source_probe"] = feature_source_probe(features, sources, groups)
    report["lung_gate_refused"] = lung_refused
    if masks:
        report["activation_inside_lungs"] = activation_report(
            lung_activation(args.checkpoint, images, masks, probs), masks, kept
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sources.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    return report


def _fmt(entry: dict[str, Any] | None) -> str:
    if not entry or entry["value"] is None:
        return "-"
    ci = entry["ci95"]
    return f"{entry['value']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def format_report(report: dict[str, Any]) -> str:
    header = f"{'source':<16} {'n':>5} {'covid':>6} {'neg':>5} {'sensitivity':>22} {'specificity':>22}"
    lines = [f"{header} {'AUC':>22} {'gate':>5}"]
    rows = {
        **report["per_source"],
        **({"UNSEEN (all)": report["unseen_sources"]} if "unseen_sources" in report else {}),
    }
    for name, e in {**rows, "POOLED": report["pooled"]}.items():
        lines.append(
            f"{name:<16} {e['n']:>5} {e['covid']:>6} {e['no_findings']:>5} {_fmt(e.get('sensitivity')):>22} "
            f"{_fmt(e.get('specificity')):>22} {_fmt(e.get('auc')):>22} {e.get('gate_refused', ''):>5}"
        )
    probe = report["feature_source_probe"]
    lines.append(
        f"feature source probe: {probe['accuracy']:.3f} accuracy over {probe['sources']} sources "
        f"(chance, the largest source's share: {probe['chance']:.3f})"
    )
    inside = report.get("activation_inside_lungs")
    if inside:
        parts = [f"all {inside['all']['inside']:.3f} (lung share {inside['all']['lung_share']:.3f})"]
        parts += [f"{k} {v['inside']:.3f}" for k, v in {**inside["per_source"], **inside["per_class"]}.items()]
        lines.append("class activation inside the lung fields: " + ", ".join(parts))
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="weights (.safetensors) to evaluate")
    parser.add_argument("--data", type=Path, required=True, help="a multi-source folder (manifest.csv with source)")
    parser.add_argument("--out", type=Path, default=Path("runs/sources"), help="report folder (default: %(default)s)")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="call covid at p(covid) >= this (default: %(default)s)"
    )
    parser.add_argument(
        "--seen",
        nargs="*",
        default=["nih", "cohen"],
        help="sources the model was trained on; the others are pooled as unseen (default: %(default)s)",
    )
    parser.add_argument(
        "--lungs",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "model" / "default" / "lungs.safetensors",
        help="the lung-field network, for v3 presets and the activation probe (default: the bundled one)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
