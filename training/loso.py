"""Leave-one-source-out: for each source, train on the others and test on it alone.

    python -m training.loso --data ../shared/data/cxr-multisource --out runs/loso --jobs 4 \\
        --arch resnet18 --task multiclass --epochs 60 --patience 15      # any training.train flag

The data is ingested once (grouped by patient, deduplicated across sources). For each held-out source
the manifest puts that source's images in the test fold (0) and splits every other source's images
into grouped, stratified folds 1.. (fold 1 is validation), so no patient and no image of the held-out
source is seen in training, early stopping, calibration, the gate or the operating point. Runs go in
parallel (``--jobs``), each resumable (``training.train --resume``: rerun the same command). The
report scores covid vs no_findings on each held-out source with patient-level bootstrap intervals
(``training.sources``), at 0.5 and at the run's own operating point.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from training.data import Record, assign_folds, ingest, write_manifest
from training.sources import source_report

logger = logging.getLogger(__name__)


def holdout_manifest(records: Sequence[Record], source: str, folds: int = 4, seed: int = 0) -> list[Record]:
    """``source`` -> fold 0 (test); the rest -> grouped stratified folds 1..``folds`` (1 = validation)."""
    rest = [replace(r) for r in records if r.source != source]
    assign_folds(rest, folds, seed)
    for record in rest:
        record.fold += 1
        record.split = "val" if record.fold == 1 else "train"
    held = [replace(r, fold=0, split="test") for r in records if r.source == source]
    return held + rest


def train_command(data: Path, manifest: Path, run: Path, train_args: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "training.train",
        "--data",
        str(data),
        "--manifest",
        str(manifest),
        "--test-fold",
        "0",
        "--val-fold",
        "1",
        "--output-dir",
        str(run / "model"),
        "--output-data-dir",
        str(run / "output"),
        "--checkpoint-dir",
        str(run / "checkpoints"),
        "--resume",
        "--no-export",
        *train_args,
    ]


def score_run(run: Path) -> dict[str, Any]:
    """The held-out source's figures from one run's test predictions."""
    with (run / "output" / "test_predictions.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] in ("covid", "no_findings")]
    if not rows:
        return {"n": 0}
    summary = json.loads((run / "output" / "training.json").read_text())
    covid = np.array([float(r["covid"]) for r in rows])
    negative = np.array([float(r["no_findings"]) for r in rows])
    p_covid = covid / (covid + negative)
    y = np.array([int(r["label"] == "covid") for r in rows])
    groups = [r["group"] for r in rows]
    report = {"at_0.5": source_report(y, p_covid, groups, 0.5)}
    threshold = summary["metadata"].get("operating_point", {}).get("threshold")
    if threshold is not None:
        # The served rule: covid at p(covid) >= threshold, on the model's own probability.
        report["at_operating_point"] = {"threshold": threshold, **source_report(y, covid, groups, threshold)}
    return report


def main(args: argparse.Namespace, train_args: list[str]) -> dict[str, Any]:
    records, ingest_report = ingest(args.data)
    sources = args.sources or sorted({r.source for r in records})
    args.out.mkdir(parents=True, exist_ok=True)
    commands = {}
    for source in sources:
        run = args.out / f"holdout-{source}"
        manifest = write_manifest(holdout_manifest(records, source), run / "manifest.csv")
        commands[source] = train_command(args.data, manifest, run, train_args)

    def train(source: str) -> int:
        with (args.out / f"holdout-{source}.log").open("ab") as log:
            return subprocess.run(commands[source], stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = dict(zip(sources, pool.map(train, sources), strict=True))
    failed = [s for s, code in codes.items() if code != 0]
    if failed:
        raise RuntimeError(f"runs for {failed} failed; see {args.out}/holdout-*.log")
    report = {
        "sources": {s: score_run(args.out / f"holdout-{s}") for s in sources},
        "counts": ingest_report.counts,
    }
    (args.out / "loso.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a multi-source folder (manifest.csv with source)")
    parser.add_argument("--out", type=Path, default=Path("runs/loso"), help="runs and report (default: %(default)s)")
    parser.add_argument("--sources", nargs="*", default=None, help="sources to hold out (default: every source)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    known, rest = get_args_parser().parse_known_args()
    main(known, rest)
