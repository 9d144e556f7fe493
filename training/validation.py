"""Stamp a model with how its recipe did on sources it never saw, measured against the project's goal.

    python -m training.validation --report runs/loso-gpu/loso.json --row resnet18:crop-equalize \\
        --checkpoint model/default/model.safetensors --write --half

The figures are those of ``training.loso``'s leave-sources-out runs of the same arch and recipe (the
shipped model itself saw every source). The served model reads ``meets_goal``: unless it is true,
every answer says its confidence is low (``model.serving.policy.confidence``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

from model.builder.checkpoint import load_checkpoint, save_checkpoint

# On sources never seen, scored covid vs no_findings: ahead of published external validations.
GOAL: Final = {"auc": 0.80, "sensitivity": 0.85, "specificity": 0.80}


def _value(figures: dict[str, Any], name: str) -> float | None:
    value = figures.get(name, {}).get("value")
    return None if value is None else float(value)


def summary(report: dict[str, Any], row: str) -> dict[str, Any]:
    """The ``ModelMetadata.validation`` of ``row`` in a ``training.loso`` report."""
    if row not in report["rows"]:
        raise SystemExit(f"{row!r} is not a row of this report; its rows: {', '.join(report['rows'])}")
    holdouts: dict[str, Any] = {}
    for held in report["holdouts"]:
        pooled = report["rows"][row].get(held, {}).get("pooled")
        if not pooled:
            continue
        holdouts[held] = {
            "n": pooled["n"],
            "auc": _value(pooled, "auc"),
            "auc_ci95": pooled.get("auc", {}).get("ci95"),
            "sensitivity": _value(pooled, "sensitivity"),
            "specificity": _value(pooled, "specificity"),
        }
    every = len(holdouts) == len(report["holdouts"])
    met = every and all(
        all(figures[name] is not None and figures[name] >= floor for name, floor in GOAL.items())
        for figures in holdouts.values()
    )
    aucs = [f["auc"] for f in holdouts.values() if f["auc"] is not None]
    return {
        "method": "leave-sources-out (training.loso): trained without a COVID source and a negative source, "
        "scored covid vs no_findings on those two; sensitivity and specificity at the run's operating point",
        "row": row,
        "holdouts": holdouts,
        "mean_auc": sum(aucs) / len(aucs) if aucs else None,
        "goal": dict(GOAL),
        "meets_goal": met,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    validation = summary(json.loads(args.report.read_text()), args.row)
    if args.write:
        net, meta = load_checkpoint(args.checkpoint)
        meta.validation = validation
        save_checkpoint(net, meta, args.checkpoint, half=args.half)
    print(json.dumps(validation, indent=2))
    return validation


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, required=True, help="loso.json of training.loso")
    parser.add_argument("--row", required=True, help="the ARCH:RECIPE row the model was trained with")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the model (.safetensors)")
    parser.add_argument("--write", action="store_true", help="store the summary in the checkpoint's metadata")
    parser.add_argument("--half", action="store_true", help="keep the checkpoint's weights in fp16 when writing")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
