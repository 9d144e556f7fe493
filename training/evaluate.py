"""Evaluate a model on any class-folder dataset (grouped cross-validation: ``training.crossval``).

    python -m training.evaluate --model build/model/model.tar.gz --data DIR --out runs/eval

Writes metrics.json (n, accuracy, balanced_accuracy, macro_f1, per_class, roc_auc, covid_sensitivity,
covid_specificity, ece, confusion_matrix), PNG plots (confusion matrix, ROC curves, reliability
diagram), class-activation overlays for one sample per class, and two shortcut probes:
- ``masked_lungs``: accuracy when the central lung field is blacked out (a model that still scores high
  is reading something other than the lungs);
- ``source_probe``: grouped-CV accuracy of a linear classifier on the image *borders only*
  (a coarse thumbnail with the lung field masked): how well the source alone gives the label away.

The metrics are on every image; ``gate`` says how many the served out-of-distribution gate would
refuse (and why) and gives the metrics on the images it lets through.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from model.core.errors import GateRefusedError, InvalidImageError
from model.core.labels import TASKS, labels_for
from model.core.preprocessing import to_batch
from model.serving.policy import ACCEPTED, NOT_A_CHEST_XRAY, NOT_UPRIGHT
from model.serving.runtime import Predictor, cam_png
from training.data import read_dataset, read_manifest
from training.metrics import ECE_BINS, compute_metrics, reliability_bins

logger = logging.getLogger(__name__)


def load_any_model(path: Path) -> Predictor:
    """A model directory, a model.tar.gz, or a .safetensors checkpoint (exported on the fly)."""
    if path.suffix == ".safetensors":
        from model.builder.artifacts import build

        out = Path(tempfile.mkdtemp(prefix="xray-eval-"))
        build(path, out, ("onnx",))
        return Predictor.load(out / "artifacts")
    from model.serving.serve import load_predictor

    return load_predictor(path)


def central_mask(batch: npt.NDArray[np.float32], frac_w: float = 0.7, frac_h: float = 0.7) -> npt.NDArray[np.float32]:
    masked = batch.copy()
    h, w = batch.shape[-2:]
    top, left = int(h * (1 - frac_h) / 2), int(w * (1 - frac_w) / 2)
    masked[..., top : h - top, left : w - left] = 0.0
    return masked


def source_probe(images: npt.NDArray[np.uint8], y: npt.NDArray[np.int64], groups: list[str], folds: int = 5) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score

    masked = central_mask(images[:, None].astype(np.float32) / 255.0)[:, 0]
    thumbs = np.stack([np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((16, 16))) for m in masked])
    features = thumbs.reshape(len(thumbs), -1) / 255.0
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    scores = cross_val_score(LogisticRegression(max_iter=2000), features, y, groups=groups, cv=splitter)
    return float(scores.mean())


def plot_all(
    metrics: dict[str, Any],
    y: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float32],
    labels: list[str],
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    cm = np.array(metrics["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm, cmap="Blues")
    ax.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted",
        ylabel="true",
        title="Confusion matrix",
    )
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 4))
    for i, label in enumerate(labels):
        if 0 < (y == i).sum() < len(y):
            fpr, tpr, _ = roc_curve(y == i, probs[:, i])
            ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.5)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (one-vs-rest)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)

    shown = reliability_bins(probs, y)  # the ECE's own bins
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.bar([c for c, *_ in shown], [a for _, _, a, _ in shown], width=0.9 / ECE_BINS, edgecolor="k")
    ax.plot([0, 1], [0, 1], "r--")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"Reliability (ECE {metrics['ece']:.3f})")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=100)
    plt.close(fig)


def cam_overlay(gray: npt.NDArray[np.uint8], cam_b64: str) -> Image.Image:
    heat = Image.open(io.BytesIO(base64.b64decode(cam_b64))).resize(gray.shape[::-1], Image.Resampling.BILINEAR)
    base = Image.fromarray(gray).convert("RGB")
    red = Image.merge("RGB", (heat, Image.new("L", heat.size, 0), Image.new("L", heat.size, 0)))
    return Image.blend(base, red, 0.4)


def gate_report(
    y: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float32],
    labels: list[str],
    decisions: npt.NDArray[np.int8],
    threshold: float | None,
) -> dict[str, Any]:
    """What the served gate would refuse of these X-rays, and the metrics on the images it lets through
    (the top-level metrics are on every image, as if there were no gate)."""
    accepted = decisions == ACCEPTED
    refused_labels = Counter(labels[i] for i in y[~accepted])
    report: dict[str, Any] = {
        "threshold": threshold,
        "refused": int((~accepted).sum()),
        "not_a_chest_xray": int((decisions == NOT_A_CHEST_XRAY).sum()),
        "not_upright": int((decisions == NOT_UPRIGHT).sum()),
        "refused_by_label": {label: refused_labels.get(label, 0) for label in labels},
    }
    if accepted.any():
        kept = compute_metrics(y[accepted], probs[accepted], labels)
        report["metrics_accepted"] = {k: v for k, v in kept.items() if k != "per_class"}
    return report


def evaluate_dataset(
    predictor: Predictor,
    data: Path,
    out: Path,
    manifest: Path | None = None,
    split: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Metrics of ``predictor`` on ``data``. ``task="binary"`` on a 3-class model scores covid vs
    no_findings with the two probabilities renormalised (pneumonia images left out, and said so)."""
    out.mkdir(parents=True, exist_ok=True)
    model_labels = list(predictor.meta.labels)
    labels = list(labels_for(task)) if task else model_labels
    if not set(labels) <= set(model_labels):
        raise SystemExit(f"a {predictor.meta.task} model cannot be scored as {task}")
    columns = [model_labels.index(label) for label in labels]
    records, report = read_dataset(data)
    if manifest is not None:
        wanted = {r.path for r in read_manifest(manifest) if split is None or r.split == split}
        groups = {r.path: r.group for r in read_manifest(manifest)}
        records = [r for r in records if r.path in wanted]
        for record in records:
            record.group = groups[record.path]
    kept = [r for r in records if r.label in labels]
    notes = []
    if len(kept) < len(records):
        left = sorted({r.label for r in records} - set(labels))
        notes.append(
            f"{len(records) - len(kept)} images labelled {left} left out: "
            f"not labels of the {task or predictor.meta.task} task"
        )
    decoded, usable = [], []
    lung_refused: Counter[str] = Counter()  # by the lung-field gate, before the classifier ran
    for record in kept:
        try:
            decoded.append(predictor.prepare((data / record.path).read_bytes()))
            usable.append(record)
        except GateRefusedError as exc:
            lung_refused[exc.reason] += 1
        except InvalidImageError as exc:
            notes.append(f"{record.path}: rejected ({exc.reason})")
    images = np.stack(decoded)
    y = np.array([labels.index(r.label) for r in usable])
    batch = to_batch(list(images))
    scored = predictor.run_arrays(batch)
    probs = scored.probabilities[:, columns] / scored.probabilities[:, columns].sum(axis=1, keepdims=True)
    cams = scored.cam[:, columns]
    metrics = compute_metrics(y, probs, labels)
    decisions = predictor.gate_decisions(scored)
    metrics["gate"] = gate_report(y, probs, labels, decisions, predictor.meta.gate_threshold)
    if predictor.lungs is not None:
        # The metrics above are on the images the lung-field gate let through.
        metrics["gate"]["no_lung_fields"] = lung_refused["no_lung_fields"]
        metrics["gate"]["not_upright"] += lung_refused["not_upright"]
        metrics["gate"]["refused"] += sum(lung_refused.values())
    masked_probs = predictor.run_arrays(central_mask(batch)).probabilities[:, columns]
    metrics["shortcut_probes"] = {
        "masked_lungs_accuracy": float((masked_probs.argmax(1) == y).mean()),
        "source_probe_accuracy": source_probe(images, y, [r.group for r in usable]),
        "chance_accuracy": float(np.bincount(y).max() / len(y)),
    }
    metrics["notes"] = [*notes, f"layout: {report.layout}"]
    metrics["model"] = predictor.model_info()
    plot_all(metrics, y, probs, labels, out)
    for i, label in enumerate(labels):
        hits = np.flatnonzero(y == i)
        if len(hits):
            j = int(hits[0])
            top = int(probs[j].argmax())
            cam_overlay(images[j], cam_png(cams[j, top])).save(out / f"cam_{label}.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model dir, model.tar.gz or .safetensors")
    parser.add_argument("--data", type=Path, required=True, help="dataset root (any layout training.data reads)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--manifest", type=Path, default=None, help="manifest from training.data: restricts to --split")
    parser.add_argument("--split", default=None, help="with --manifest: train, val or test (default: all)")
    parser.add_argument("--task", default=None, choices=TASKS, help="(default: the model's task)")
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    return evaluate_dataset(load_any_model(args.model), args.data, args.out, args.manifest, args.split, args.task)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    result = main(get_args_parser().parse_args())
    summary: dict[str, Any] = {
        k: result[k]
        for k in (
            "n",
            "accuracy",
            "balanced_accuracy",
            "macro_f1",
            "roc_auc",
            "ece",
            "covid_sensitivity",
            "covid_specificity",
        )
        if k in result
    }
    summary.update({k: result[k] for k in ("shortcut_probes", "gate") if k in result})
    print(json.dumps(summary, indent=2))
