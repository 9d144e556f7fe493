"""Classification metrics with the names ``metrics.json`` uses everywhere (CNN, Spark, evaluation)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from model.core.labels import COVID


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    matrix = np.zeros((k, k), np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


ECE_BINS = 15


def reliability_bins(
    probs: npt.NDArray[np.floating[Any]], y_true: npt.ArrayLike, bins: int = ECE_BINS
) -> list[tuple[float, float, float, float]]:
    """Equal-width bins of the top-1 confidence that hold images: (centre, share of images, accuracy,
    mean confidence) each. What the ECE sums and the reliability plot draws."""
    y = np.asarray(y_true)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    out = []
    for lo, hi in itertools.pairwise(np.linspace(0.0, 1.0, bins + 1)):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            out.append(
                ((lo + hi) / 2, float(in_bin.mean()), float(correct[in_bin].mean()), float(confidence[in_bin].mean()))
            )
    return out


def expected_calibration_error(
    probs: npt.NDArray[np.floating[Any]], y_true: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """ECE of the top-1 confidence, equal-width bins: sum_b |B|/n * |acc(B) - conf(B)|."""
    shown = reliability_bins(probs, y_true, bins)
    return float(sum(share * abs(accuracy - conf) for _, share, accuracy, conf in shown))


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def compute_metrics(
    y_true: Sequence[int] | npt.NDArray[Any], probs: npt.NDArray[Any], labels: Sequence[str]
) -> dict[str, Any]:
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    per_class: dict[str, dict[str, float]] = {}
    for i, label in enumerate(labels):
        tp = cm[i, i]
        precision = _safe_div(tp, cm[:, i].sum())
        recall = _safe_div(tp, cm[i, :].sum())
        f1 = _safe_div(2 * precision * recall, precision + recall)
        per_class[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(cm[i, :].sum()),
        }
    present = [i for i in range(k) if cm[i, :].sum() > 0]
    try:
        if k == 2:
            roc_auc = float(roc_auc_score(y, probs[:, 1]))
        else:
            roc_auc = float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(k))))
    except ValueError:
        roc_auc = float("nan")  # a class is missing from y_true: AUC is undefined
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": _safe_div(np.trace(cm), cm.sum()),
        "balanced_accuracy": float(np.mean([per_class[labels[i]]["recall"] for i in present])) if present else 0.0,
        "macro_f1": float(np.mean([per_class[label]["f1"] for label in labels])),
        "per_class": per_class,
        "roc_auc": roc_auc,
        "ece": expected_calibration_error(probs, y),
        "confusion_matrix": {"labels": list(labels), "matrix": cm.tolist()},
    }
    if COVID in labels:
        c = list(labels).index(COVID)
        tn = cm.sum() - cm[c, :].sum() - cm[:, c].sum() + cm[c, c]
        out["covid_sensitivity"] = per_class[COVID]["recall"]
        out["covid_specificity"] = _safe_div(tn, cm.sum() - cm[c, :].sum())
    return out
