"""Leave sources out: train without some sources (hospitals, collections), test on them alone.

    python -m training.data --data ../shared/data/cxr-multisource --out runs/ms/manifest.csv
    python -m training.loso --data ../shared/data/cxr-multisource --manifest runs/ms/manifest.csv \\
        --out runs/loso --jobs 4 --rows resnet18:baseline resnet18:crop-equalize \\
        --epochs 30 --patience 12                # any further flag goes to every training.train run

A COVID-vs-no_findings AUC needs both classes from sources the model never saw, and no source here
holds many of both. So each **holdout** is a pair: one source that holds COVID images and one that
holds none (by default every such pair; ``--holdouts hannover+nih`` names others). Both go, whole, to
the test fold; every other source's images are split into grouped, stratified folds 1.. (fold 1 is
validation), so no patient and no image of a held-out source is seen in training, early stopping,
calibration, the gate or the operating point.

Each **row** is an arch and a recipe (``training.recipes``); ``--final`` also trains the rows it names
on every source (the model one would ship). Runs go in parallel (``--jobs``), in the order of
``--rows``, each resumable: rerun the same command. ``--deadline`` ends every run's training that many
seconds after this command started (each finishes with its best epoch so far). The report (``loso.json``
and ``loso.md``) scores each held-out pair: ROC AUC of covid vs no_findings, COVID sensitivity on the
held-out COVID source and specificity on the held-out negative source at the run's operating point, with
patient-level bootstrap intervals (``training.sources``).
Rows are ranked by their mean held-out AUC.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.data import Record, assign_folds, ingest, read_manifest, split_of, write_manifest
from training.recipes import recipe_args
from training.sources import source_report

logger = logging.getLogger(__name__)

ALL_SOURCES = "all"


@dataclass(frozen=True)
class Row:
    """``ARCH:RECIPE``, optionally ``@HOLDOUT,HOLDOUT`` to run only those holdouts (a big model on fewer)."""

    arch: str
    recipe: str
    only: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.arch}:{self.recipe}"

    @classmethod
    def parse(cls, text: str) -> Row:
        spec, _, only = text.partition("@")
        arch, _, recipe = spec.partition(":")
        recipe_args(recipe or "baseline", arch)  # validates both names
        return cls(arch, recipe or "baseline", tuple(h for h in only.split(",") if h))

    def runs(self, holdouts: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
        return [h for h in holdouts if not self.only or "+".join(h) in self.only]


def default_holdouts(records: Sequence[Record]) -> list[tuple[str, ...]]:
    """Every (source with COVID images, source without any) pair."""
    with_covid = sorted({r.source for r in records if r.label == "covid"})
    without = sorted({r.source for r in records} - set(with_covid))
    return [(c, n) for c in with_covid for n in without]


def holdout_manifest(records: Sequence[Record], held: Sequence[str], folds: int = 4, seed: int = 0) -> list[Record]:
    """The ``held`` sources -> fold 0 (test); the rest -> grouped stratified folds 1..``folds`` (1 = val)."""
    rest = [replace(r) for r in records if r.source not in held]
    assign_folds(rest, folds, seed)
    for record in rest:
        record.fold += 1
        record.split = split_of(record.fold, 0, 1)
    test = [replace(r, fold=0, split="test") for r in records if r.source in held]
    return test + rest


def final_manifest(records: Sequence[Record], folds: int = 5, seed: int = 0) -> list[Record]:
    """Every source: fold 0 test, fold 1 validation, the rest training."""
    every = [replace(r) for r in records]
    assign_folds(every, folds, seed)
    return every


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


def score_run(run: Path, held: Sequence[str]) -> dict[str, Any]:
    """One run's figures on its held-out sources: covid vs no_findings, pooled and per source."""
    summary = json.loads((run / "output" / "training.json").read_text())
    with (run / "output" / "test_predictions.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] in ("covid", "no_findings")]
    threshold = summary["metadata"].get("operating_point", {}).get("threshold")
    report: dict[str, Any] = {
        "threshold": threshold,
        "epochs_run": len(summary["history"]),
        "best_epoch": summary["metrics"]["best_epoch"],
        "gate_test": summary["metadata"].get("gate", {}).get("test"),
    }
    if not rows:
        return report
    covid = np.array([float(r["covid"]) for r in rows])
    y = np.array([int(r["label"] == "covid") for r in rows])
    groups = [r["group"] for r in rows]
    sources = np.array([r["source"] for r in rows])
    # The served rule: covid at p(covid) >= the run's operating point (argmax where it has none).
    p_covid = covid / (covid + np.array([float(r["no_findings"]) for r in rows]))
    cut = threshold if threshold is not None else 0.5
    score = covid if threshold is not None else p_covid
    report["pooled"] = source_report(y, score, groups, cut)
    report["per_source"] = {}
    for source in held:
        mine = sources == source
        if mine.any():
            kept = [g for g, k in zip(groups, mine, strict=True) if k]
            report["per_source"][source] = source_report(y[mine], score[mine], kept, cut)
    return report


def run_dir(out: Path, row: Row, held: Sequence[str]) -> Path:
    return out / f"{row.arch}-{row.recipe}" / "+".join(held)


def common_holdouts(report: dict[str, Any]) -> list[str]:
    """The holdouts every row was scored on (the rows' means are compared on these alone)."""
    return [h for h in report["holdouts"] if all(held_out_auc(runs, h) is not None for runs in report["rows"].values())]


def held_out_auc(runs: dict[str, Any], held: str) -> float | None:
    value = runs.get(held, {}).get("pooled", {}).get("auc", {}).get("value")
    return None if value is None else float(value)


def mean_common_auc(report: dict[str, Any], name: str) -> float | None:
    """Row ``name``'s mean AUC over the holdouts every row was scored on: what rows are ranked by."""
    aucs = [held_out_auc(report["rows"].get(name, {}), h) for h in common_holdouts(report)]
    known = [a for a in aucs if a is not None]
    return float(np.mean(known)) if aucs and len(known) == len(aucs) else None


def table(report: dict[str, Any]) -> str:
    """Markdown: a row per arch and recipe, a column per held-out pair: AUC (sensitivity / specificity
    at the run's operating point), then the mean AUC over every holdout and over the common ones."""
    holdouts, common = report["holdouts"], common_holdouts(report)
    lines = [
        "| row | " + " | ".join(holdouts) + " | mean AUC | mean AUC, " + " & ".join(common) + " |",
        "|---|" + "---|" * (len(holdouts) + 2),
    ]
    for name, runs in report["rows"].items():
        cells = []
        for held in holdouts:
            pooled = runs.get(held, {}).get("pooled")
            if not pooled or "auc" not in pooled:
                cells.append("-")
                continue
            auc, sens, spec = (pooled[k]["value"] for k in ("auc", "sensitivity", "specificity"))
            cells.append(f"{auc:.3f} ({sens:.2f} / {spec:.2f})")
        every = [a for a in (held_out_auc(runs, h) for h in holdouts) if a is not None]
        mean = f"{np.mean(every):.3f}" if len(every) == len(holdouts) else "-"
        shared = mean_common_auc(report, name)
        common_mean = "-" if shared is None else f"{shared:.3f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} | {common_mean} |")
    return "\n".join(lines) + "\n"


def best_row(report: dict[str, Any]) -> str | None:
    """The row with the highest mean held-out AUC over the holdouts every row was scored on."""
    means = {name: mean_common_auc(report, name) for name in report["rows"]}
    ranked = {name: mean for name, mean in means.items() if mean is not None}
    return max(ranked, key=lambda n: ranked[n]) if ranked else None


def main(args: argparse.Namespace, train_args: list[str]) -> dict[str, Any]:
    if args.manifest is not None:
        records = read_manifest(args.manifest)
    else:
        records, _ = ingest(args.data)
    holdouts = [tuple(h.split("+")) for h in args.holdouts] if args.holdouts else default_holdouts(records)
    rows = [Row.parse(text) for text in args.rows]
    args.out.mkdir(parents=True, exist_ok=True)
    manifests = {
        held: write_manifest(holdout_manifest(records, held), args.out / "manifests" / f"{'+'.join(held)}.csv")
        for held in holdouts
    }
    plan: dict[tuple[Row, tuple[str, ...]], list[str]] = {}

    @functools.cache
    def every_source() -> Path:
        """The final models' manifest, written once for every row that has one."""
        return write_manifest(final_manifest(records), args.out / "manifests" / "all.csv")

    for row in rows:
        flags = ["--arch", row.arch, *recipe_args(row.recipe, row.arch), *train_args]
        for held in row.runs(holdouts):
            plan[(row, held)] = train_command(args.data, manifests[held], run_dir(args.out, row, held), flags)
        if row.name in args.final:
            plan[(row, (ALL_SOURCES,))] = train_command(
                args.data, every_source(), run_dir(args.out, row, (ALL_SOURCES,)), [*flags, "--half"]
            )

    started = time.time()

    def train(key: tuple[Row, tuple[str, ...]]) -> int:
        run = run_dir(args.out, *key)
        run.mkdir(parents=True, exist_ok=True)
        command = plan[key]
        if args.deadline:
            command = [*command, "--time-limit", str(max(1, round(args.deadline - (time.time() - started))))]
        with (run / "train.log").open("ab") as log:
            return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = dict(zip(plan, pool.map(train, plan), strict=True))
    failed = [f"{row.name} {'+'.join(held)}" for (row, held), code in codes.items() if code != 0]
    if failed:
        logger.error("runs failed: %s; see their train.log", failed)
    report: dict[str, Any] = {
        "holdouts": ["+".join(h) for h in holdouts],
        "rows": {
            row.name: {
                "+".join(held): score_run(run_dir(args.out, row, held), held)
                for held in row.runs(holdouts)
                if codes[(row, held)] == 0
            }
            for row in rows
        },
        "finals": {
            row.name: score_run(run_dir(args.out, row, (ALL_SOURCES,)), sorted({r.source for r in records}))
            for row in rows
            if codes.get((row, (ALL_SOURCES,))) == 0
        },
        "failed": failed,
        "train_args": train_args,
    }
    report["best"] = best_row(report)
    (args.out / "loso.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "loso.md").write_text(table(report))
    print(table(report))
    print(f"best row by mean held-out AUC: {report['best']}")
    return report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a multi-source folder (manifest.csv with source)")
    parser.add_argument(
        "--manifest", type=Path, default=None, help="an ingested manifest of --data (default: ingest now)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/loso"), help="runs and report (default: %(default)s)")
    parser.add_argument(
        "--holdouts",
        nargs="*",
        default=None,
        help="sources held out together, e.g. hannover+nih (default: every COVID source with every other)",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["resnet18:baseline"],
        help="ARCH:RECIPE rows, recipes from training.recipes (default: %(default)s)",
    )
    parser.add_argument(
        "--final", nargs="*", default=[], help="ARCH:RECIPE rows also trained on every source (default: none)"
    )
    parser.add_argument(
        "--deadline",
        type=int,
        default=0,
        help="seconds after start at which every run stops training and finishes (default: none)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    known, rest = get_args_parser().parse_known_args()
    main(known, rest)
