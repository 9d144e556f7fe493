"""Grouped K-fold cross-validation: train K models (``training.train``), pool their held-out predictions.

    python -m training.crossval --folds 5 --data DIR --out runs/cv --arch resnet18 --task binary [train flags]

Fold k is the test fold of model k and fold k+1 its validation fold; groups (patients) never straddle
folds. Every image is scored exactly once, by the model that never saw it. Writes ``cv_metrics.json``
(``training.metrics`` names, plus per-fold accuracy) and one log per fold.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from training.metrics import compute_metrics
from training.train import PREDICTION_COLUMNS


def aggregate_cv(out: Path, folds: int) -> dict[str, Any]:
    """Pool the held-out predictions of every fold (each image scored once) and summarise per fold."""
    ys, ps, per_fold = [], [], []
    labels: list[str] = []
    for k in range(folds):
        with (out / f"fold-{k}" / "output" / "test_predictions.csv").open(newline="") as handle:
            header, *rows = list(csv.reader(handle))
        first = len(PREDICTION_COLUMNS)
        labels = header[first:]
        y = np.array([labels.index(r[1]) for r in rows])
        p = np.array([[float(v) for v in r[first:]] for r in rows])
        per_fold.append(float((p.argmax(1) == y).mean()))
        ys.append(y)
        ps.append(p)
    metrics = compute_metrics(np.concatenate(ys), np.concatenate(ps), labels)
    metrics["per_fold_accuracy"] = per_fold
    metrics["mean_fold_accuracy"] = float(np.mean(per_fold))
    metrics["std_fold_accuracy"] = float(np.std(per_fold))
    (out / "cv_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def run_cv(args: argparse.Namespace, train_args: list[str]) -> dict[str, Any]:
    commands = []
    for k in range(args.folds):
        fold = args.out / f"fold-{k}"
        commands.append(
            [
                sys.executable,
                "-m",
                "training.train",
                "--data",
                str(args.data),
                "--test-fold",
                str(k),
                "--val-fold",
                str((k + 1) % args.folds),
                "--folds",
                str(args.folds),
                "--output-dir",
                str(fold / "model"),
                "--output-data-dir",
                str(fold / "output"),
                "--checkpoint-dir",
                str(fold / "checkpoints"),
                "--no-export",
                *train_args,
            ]
        )
    args.out.mkdir(parents=True, exist_ok=True)

    def run_fold(k: int) -> int:
        with (args.out / f"fold-{k}.log").open("wb") as log:
            return subprocess.run(commands[k], stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = list(pool.map(run_fold, range(args.folds)))
    failed = [k for k, code in enumerate(codes) if code != 0]
    if failed:
        raise RuntimeError(f"folds {failed} failed; see {args.out}/fold-*.log")
    return aggregate_cv(args.out, args.folds)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset root (any layout training.data reads)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--folds", type=int, default=5, help="K: models trained (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="folds trained in parallel (default: %(default)s)")
    parser.add_argument("--aggregate-only", action="store_true", help="only pool existing fold outputs under --out")
    return parser


def main(args: argparse.Namespace, train_args: list[str]) -> dict[str, Any]:
    """``train_args``: every flag this parser does not know goes to ``training.train`` unchanged."""
    return aggregate_cv(args.out, args.folds) if args.aggregate_only else run_cv(args, train_args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    known, rest = get_args_parser().parse_known_args()
    result = main(known, rest)
    keys = ("n", "accuracy", "macro_f1", "roc_auc", "mean_fold_accuracy", "std_fold_accuracy")
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=2))
