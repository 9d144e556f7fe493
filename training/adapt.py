"""Adapt the model to a site: validate it on the site's own labelled images, fine-tune it there, and
estimate honestly how the fine-tuned model does, in one command.

    python -m training.adapt --checkpoint model/default/model.safetensors --data SITE_DIR --out OUT \\
        [--task binary|multiclass] [--folds 5] [--time-limit SECONDS] [--site-name NAME]

1. **Before**: the starting model scores every site image (calibrated probabilities, its operating
   point and its gate: what the endpoint would answer), with patient-level bootstrap intervals.
2. **After**, by patient-grouped k-fold cross-validation within the site: for each fold, fine-tune
   from the starting checkpoint on the other folds (one of them for early stopping, temperature and
   the operating point), then score the held-out fold. The pooled out-of-fold predictions give the
   figures; no image is ever scored by a model that saw it (``folds/<strategy>/<k>/`` keeps each
   fold's manifest and predictions to show it). Every strategy of ``STRATEGIES`` runs the whole
   cross-validation and the best by pooled ROC AUC is chosen, never by a single split.
3. **The adapted model**: the chosen strategy on all of the site's images (one fold kept for early
   stopping, calibration, the operating point at COVID sensitivity >= 0.90, and the gate, refitted to
   refuse at most 1 % of them), stamped with its site validation (``ModelMetadata.site_validation``).

Outputs: ``OUT/report.json``, ``OUT/report.html`` (one self-contained page: ``training.adapt_report``),
``OUT/predictions.json`` (before and after, per image), ``OUT/model.safetensors``, ``OUT/model.tar.gz``
(the serving layout of ``make model``) and ``OUT/MODEL_CARD.md``. Each fold's run resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from model.builder.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from model.core.errors import InvalidImageError
from model.core.labels import COVID, NO_FINDINGS, labels_for
from model.core.preprocessing import prepare
from model.core.presets import get_preset
from model.serving.policy import ACCEPTED, decide
from training import train
from training.adapt_report import render
from training.data import NIH_NAME, Record, add_hashes, assign_folds, read_dataset, remove_duplicates, write_manifest
from training.metrics import compute_metrics, expected_calibration_error
from training.sources import _auc, bootstrap_ci, score_images

logger = logging.getLogger(__name__)

# The project's goal for a model to be trusted at a site (issue 22): binary covid vs no_findings.
GOAL: Final = {"roc_auc": 0.80, "covid_sensitivity": 0.85, "covid_specificity": 0.80}
SITE_GATE_MAX_REFUSAL: Final = 0.01
MOSTLY_REFUSED: Final = 0.5


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    flags: tuple[str, ...]


# Small data: few epochs, early stopping on the validation fold, the backbone slower than the head.
STRATEGIES: Final = (
    Strategy("head", "the classifier alone (backbone frozen)", ("--freeze-epochs", "1000", "--lr", "3e-3")),
    Strategy(
        "full",
        "the classifier for 2 epochs, then the whole network with the backbone at a tenth of the rate",
        ("--freeze-epochs", "2", "--backbone-lr-scale", "0.1", "--lr", "1e-3"),
    ),
)
COMMON_FLAGS: Final = ("--augment", "strong", "--batch-size", "16", "--patience", "4", "--no-export")


@dataclass
class Site:
    """The site's usable images, decoded once, and what was left out with its reason."""

    records: list[Record]
    images: npt.NDArray[np.uint8]
    skipped: list[dict[str, str]]
    patients_named: bool


def load_site(args: argparse.Namespace, preset_id: str) -> Site:
    """The site's images as ``training.data`` reads them (duplicates dropped), the task's labels alone,
    each decoded; folds assigned by patient once the usable images are known."""
    labels = labels_for(args.task)
    try:
        found, report = read_dataset(args.data)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read {args.data}: {exc}") from exc
    skipped, readable = [], []
    for record in found:
        try:
            add_hashes([record], args.data)  # the duplicate finder's hashes; Pillow reads the file for them
            readable.append(record)
        except (OSError, ValueError, SyntaxError) as exc:
            skipped.append({"path": record.path, "reason": f"unreadable: {type(exc).__name__}"})
    records = remove_duplicates(readable, report)
    skipped += [{"path": b, "reason": f"duplicate of {a}"} for a, b in report.exact_duplicates + report.near_duplicates]
    kept, decoded = [], []
    preset = get_preset(preset_id)
    for record in records:
        if record.label not in labels:
            skipped.append({"path": record.path, "reason": f"label {record.label} is not one of the {args.task} task"})
            continue
        try:
            decoded.append(prepare((args.data / record.path).read_bytes(), preset))
            kept.append(record)
        except InvalidImageError as exc:
            skipped.append({"path": record.path, "reason": f"{exc.reason}: {exc}"})
    check_enough(kept, labels, args.folds)
    assign_folds(kept, args.folds, args.seed)
    named = (
        report.layout == "cohen"
        or manifest_names_patients(args.data)
        or all(NIH_NAME.match(Path(r.path).name) for r in kept)  # NIH file names carry the patient id
    )
    return Site(kept, np.stack(decoded), skipped, named)


def manifest_names_patients(root: Path) -> bool:
    """Whether the folder's manifest.csv gives images a patient (the folds' groups)."""
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return False
    with manifest.open(newline="") as handle:
        return any((row.get("patient") or "").strip() for row in csv.DictReader(handle))


def check_enough(records: list[Record], labels: tuple[str, ...], folds: int) -> None:
    """Every label needs a patient in every fold; say how many are needed when it has not."""
    patients = {label: len({r.group for r in records if r.label == label}) for label in labels}
    missing = [label for label, n in patients.items() if n == 0]
    if missing:
        raise SystemExit(f"the site has no usable {', '.join(missing)} images: the {len(labels)}-class task needs them")
    short = {label: n for label, n in patients.items() if n < folds}
    if short:
        have = ", ".join(f"{label} {n}" for label, n in short.items())
        raise SystemExit(
            f"{folds} folds need at least {folds} patients of each label; the site has {have}: "
            f"add images or use --folds {max(2, min(patients.values()))}"
        )


# -- figures ---------------------------------------------------------------------------------------
def figures(
    y: npt.NDArray[np.int64], probs: npt.NDArray[np.float64], called: npt.NDArray[np.bool_], groups: list[str]
) -> dict[str, Any]:
    """Binary covid vs no_findings figures: ``y`` 1 for covid, ``probs`` (n, 2) as [no_findings, covid]."""
    p = probs[:, 1]

    def rate(hits: npt.NDArray[np.bool_]) -> float:
        return float(hits.mean()) if len(hits) else float("nan")

    def with_ci(fn: Any) -> tuple[float | None, tuple[float, float] | None]:
        value = fn(np.arange(len(y)))
        return (None if not np.isfinite(value) else float(value)), bootstrap_ci(groups, fn)

    auc, auc_ci = with_ci(lambda i: _auc(y[i], p[i]))
    sensitivity, sensitivity_ci = with_ci(lambda i: rate(called[i][y[i] == 1]))
    specificity, specificity_ci = with_ci(lambda i: rate(~called[i][y[i] == 0]))
    out: dict[str, Any] = {
        "n": len(y),
        "covid": int(y.sum()),
        "no_findings": int((y == 0).sum()),
        "roc_auc": auc,
        "roc_auc_ci": auc_ci,
        "covid_sensitivity": sensitivity,
        "covid_sensitivity_ci": sensitivity_ci,
        "covid_specificity": specificity,
        "covid_specificity_ci": specificity_ci,
        "ece": expected_calibration_error(probs, y),
    }
    out["meets_goal"] = all(out[name] is not None and out[name] >= floor for name, floor in GOAL.items())
    return out


OTHER: Final = -1  # ``y`` of an image of neither covid nor no_findings (pneumonia)


def scored(checkpoint: Path, images: npt.NDArray[np.uint8], records: list[Record], task: str) -> dict[str, Any]:
    """What the checkpoint's served graph answers for each image: covid vs no_findings probabilities
    (``y`` 1, 0, or ``OTHER``), the decision at its operating point, the gate's, and for the 3-class
    task the probabilities of every label in the task's order."""
    probs, _, decisions, labels = score_images(checkpoint, images)
    task_labels = labels_for(task)
    meta = read_checkpoint_metadata(checkpoint)
    covid, normal = labels.index(COVID), labels.index(NO_FINDINGS)
    pair = probs[:, [normal, covid]]
    binary = pair / pair.sum(axis=1, keepdims=True)
    called = np.array([labels[decide(row, labels, meta.covid_threshold)] == COVID for row in probs])
    codes = {COVID: 1, NO_FINDINGS: 0}
    return {
        "paths": [r.path for r in records],
        "y": [codes.get(r.label, OTHER) for r in records],
        "truth": [task_labels.index(r.label) for r in records],
        "groups": [r.group for r in records],
        "probs": binary.tolist(),
        "probs_task": probs[:, [labels.index(label) for label in task_labels]].tolist(),
        "called": called.tolist(),
        "refused": (decisions != ACCEPTED).tolist(),
    }


def summarize(predictions: dict[str, Any], task: str = "binary") -> dict[str, Any]:
    """Binary covid vs no_findings figures (pneumonia images left out of them), the gate's refusals,
    and for the 3-class task its own figures (``multiclass``) over every image."""
    binary = [i for i, r in enumerate(predictions["y"]) if r in (0, 1)]
    y = np.array([predictions["y"][i] for i in binary], dtype=np.int64)
    out = figures(
        y,
        np.array([predictions["probs"][i] for i in binary], dtype=np.float64),
        np.array([predictions["called"][i] for i in binary], dtype=bool),
        [predictions["groups"][i] for i in binary],
    )
    refused = int(sum(predictions["refused"]))
    out["gate"] = {"refused": refused, "share": refused / max(1, len(predictions["refused"]))}
    if task == "multiclass" and "probs_task" in predictions:
        full = compute_metrics(predictions["truth"], np.array(predictions["probs_task"]), labels_for(task))
        out["multiclass"] = {
            k: full[k] for k in ("n", "accuracy", "macro_f1", "roc_auc", "ece", "per_class", "confusion_matrix")
        }
    return out


# -- cross-validation ------------------------------------------------------------------------------
def fold_manifest(records: list[Record], test_fold: int, folds: int) -> list[Record]:
    """Fold ``test_fold`` held out, the next one for validation, the rest for training."""
    val_fold = (test_fold + 1) % folds
    return [
        Record(**{**r.__dict__, "split": "test" if r.fold == test_fold else "val" if r.fold == val_fold else "train"})
        for r in records
    ]


def fine_tune(
    args: argparse.Namespace, strategy: Strategy, manifest: list[Record], run: Path, test_fold: int, seconds: float
) -> Path:
    """One fine-tuning run (resumable); the checkpoint it wrote."""
    checkpoint = run / "model" / "model.safetensors"
    if checkpoint.is_file():
        return checkpoint
    path = write_manifest(manifest, run / "manifest.csv")
    val_fold = (test_fold + 1) % args.folds if test_fold >= 0 else 0
    flags = [
        "--data", str(args.data), "--manifest", str(path), "--init-checkpoint", str(args.checkpoint),
        "--task", args.task, "--epochs", str(args.epochs), "--seed", str(args.seed),
        "--test-fold", str(test_fold), "--val-fold", str(val_fold),
        "--output-dir", str(run / "model"), "--output-data-dir", str(run / "output"),
        "--checkpoint-dir", str(run / "state"), "--gate-max-refusal", str(SITE_GATE_MAX_REFUSAL),
        "--time-limit", str(max(1.0, seconds)), "--model-version", args.model_version or f"site-{args.site_name}",
        *COMMON_FLAGS, *strategy.flags,
    ]  # fmt: skip
    train.main(train.get_args_parser().parse_args(flags))
    return checkpoint


def cross_validate(
    args: argparse.Namespace, site: Site, strategy: Strategy, deadline: float, runs_left: int
) -> dict[str, Any]:
    """Pooled out-of-fold predictions of ``strategy``, each fold scored by the model fine-tuned without it."""
    pooled: dict[str, list[Any]] = {}
    for fold in tqdm(range(args.folds), desc=f"cross-validating '{strategy.name}'", disable=None):
        run = args.out / "folds" / strategy.name / str(fold)
        done = run / "predictions.json"
        if not done.is_file():
            seconds = (deadline - time.time()) / max(1, runs_left)
            checkpoint = fine_tune(args, strategy, fold_manifest(site.records, fold, args.folds), run, fold, seconds)
            held = [i for i, r in enumerate(site.records) if r.fold == fold]
            records = [site.records[i] for i in held]
            done.write_text(json.dumps(scored(checkpoint, site.images[held], records, args.task)))
        runs_left -= 1
        for key, values in json.loads(done.read_text()).items():
            pooled.setdefault(key, []).extend(values)
    return pooled


# -- the adapted model -----------------------------------------------------------------------------
def stamp(checkpoint: Path, out: Path, validation: dict[str, Any]) -> Path:
    net, meta = load_checkpoint(checkpoint)
    meta.site_validation = validation
    return save_checkpoint(net, meta, out / "model.safetensors")


def package(checkpoint: Path, out: Path) -> Path:
    from model.builder.artifacts import build

    built = build(checkpoint, out / "build")
    target = out / "model.tar.gz"
    shutil.copyfile(built, target)
    return target


def sample_heatmaps(artifacts: Path, site: Site, per_label: int = 2) -> list[dict[str, str]]:
    """Class-activation overlays of the adapted model's served graph on a few site images of each label
    (the first images of each label; the final model saw them, so these show where it looks, not how well)."""
    from model.core.preprocessing import to_batch
    from model.serving.runtime import Predictor, cam_png
    from training.evaluate import cam_overlay

    predictor = Predictor.load(artifacts)
    labels = list(predictor.meta.labels)
    samples = []
    for label in labels:
        for index in [i for i, r in enumerate(site.records) if r.label == label][:per_label]:
            out = predictor.run_arrays(to_batch([site.images[index]]))
            top = int(out.probabilities[0].argmax())
            overlay = cam_overlay(site.images[index], cam_png(out.cam[0, top]))
            buffer = io.BytesIO()
            overlay.save(buffer, format="PNG")
            samples.append(
                {
                    "label": label,
                    "answer": labels[top],
                    "png": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
                }
            )
    return samples


def model_card(report: dict[str, Any]) -> str:
    before, after = report["before"], report["after"]

    def line(name: str, figure: dict[str, Any]) -> str:
        ci = figure.get(f"{name}_ci")
        value = figure.get(name)
        shown = "n/a" if value is None else f"{value:.3f}"
        return f"{shown} ({ci[0]:.3f} to {ci[1]:.3f})" if ci else shown

    rows = "\n".join(
        f"| {name} | {line(name, before)} | {line(name, after)} |"
        for name in ("roc_auc", "covid_sensitivity", "covid_specificity")
    )
    return f"""# Model card: {report["model"]["version"]}, adapted to {report["site"]}

Fine-tuned from `{report["start"]["version"]}` on {report["images_used"]} images of {report["site"]}
({report["patients"]} patients), strategy **{report["strategy"]}**: {report["strategy_description"]}.

## How it does at {report["site"]} (covid vs no_findings)

| figure | before (starting model) | after ({report["folds"]}-fold cross-validation, out-of-fold) |
| --- | --- | --- |
{rows}
| ECE | {before["ece"]:.3f} | {after["ece"]:.3f} |
| gate refusals | {before["gate"]["refused"]} of {before["n"]} | {after["gate"]["refused"]} of {after["n"]} |

95 % intervals resample patients. The project's goal (ROC AUC >= 0.80, sensitivity >= 0.85 at
specificity >= 0.80) is **{"met" if after["meets_goal"] else "not met"}**: answers of this model say
`confidence: {"normal" if after["meets_goal"] else "low"}`{" unless borderline" if after["meets_goal"] else ""}.

## Caveats

{chr(10).join(f"- {c}" for c in report["caveats"])}
"""


def trained_on(meta: Any) -> frozenset[str]:
    """The sources a checkpoint's training data names (``ModelMetadata.training_data``), if any."""
    sources = meta.training_data.get("sources") or {}
    return frozenset(name for split in sources.values() if isinstance(split, dict) for name in split)


def caveats(
    site: Site,
    before: dict[str, Any],
    sources: Counter[str],
    after: dict[str, Any] | None = None,
    trained_on: frozenset[str] = frozenset(),
) -> list[str]:
    """The report's caveats in plain words; ``trained_on``: the sources the starting model was trained on."""
    notes = [
        "The figures hold for images like these, from this site: another site, scanner or ward may differ.",
        f"{before['n']} images give wide intervals; read the interval, not the point.",
    ]
    if not site.patients_named:
        notes.append("No patient was named (no manifest.csv patient column): each image counted as its own patient.")
    if len(sources) > 1:
        notes.append(
            f"Images come from {len(sources)} sources; where class and source go together, the model may "
            "tell sources apart, not diseases."
        )
    if before["gate"]["share"] > MOSTLY_REFUSED:
        notes.append(
            f"The starting model's gate refused {before['gate']['refused']} of {before['n']} images: to it they are "
            "not chest X-rays. Check that they are frontal chest radiographs."
        )
    seen = sorted(trained_on & set(sources))
    if seen:
        notes.append(
            f"The starting model was trained on sources named {', '.join(seen)}, as some of these images are: the "
            "'before' figures may include images it learnt from, and say little about a site it never saw."
        )
    if after is not None and after["gate"]["share"] > 2 * SITE_GATE_MAX_REFUSAL:
        notes.append(
            f"Refitted on each fold's few validation images to refuse at most {SITE_GATE_MAX_REFUSAL:.0%}, the gate "
            f"refused {after['gate']['refused']} of {after['n']} held-out site images: with this few images its "
            "threshold is uncertain, and more of the site's X-rays may be refused than intended."
        )
    return notes


def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    deadline = started + args.time_limit if args.time_limit else float("inf")
    args.out.mkdir(parents=True, exist_ok=True)
    args.site_name = args.site_name or args.data.resolve().name
    try:
        start = read_checkpoint_metadata(args.checkpoint)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--checkpoint {args.checkpoint}: {exc}") from exc
    if not set(labels_for(args.task)) <= set(start.labels):
        raise SystemExit(f"{args.checkpoint} is a {start.task} model; it cannot be adapted to the {args.task} task")
    site = load_site(args, start.preset)
    before_predictions = scored(args.checkpoint, site.images, site.records, args.task)
    before = summarize(before_predictions, args.task)
    if before["gate"]["share"] > MOSTLY_REFUSED:
        logger.warning("the starting model's gate refuses most of these images: to it they are not chest X-rays")
    runs = len(STRATEGIES) * args.folds + 1
    results, pooled = {}, {}
    for index, strategy in enumerate(STRATEGIES):
        pooled[strategy.name] = cross_validate(args, site, strategy, deadline, runs - index * args.folds)
        results[strategy.name] = summarize(pooled[strategy.name], args.task)
    chosen = max(STRATEGIES, key=lambda s: results[s.name]["roc_auc"] or 0.0)
    after = results[chosen.name]
    every = [Record(**{**r.__dict__, "split": "val" if r.fold == 0 else "train"}) for r in site.records]
    final = fine_tune(args, chosen, every, args.out / "final", -1, deadline - time.time())
    validation = {
        "site": args.site_name,
        "n": after["n"],
        "folds": args.folds,
        "strategy": chosen.name,
        **{k: after[k] for k in ("roc_auc", "roc_auc_ci", "covid_sensitivity", "covid_specificity", "ece")},
        "goal": GOAL,
        "meets_goal": after["meets_goal"],
    }
    checkpoint = stamp(final, args.out, validation)
    tarball = package(checkpoint, args.out)
    meta = read_checkpoint_metadata(checkpoint)
    source_counts = Counter(r.source for r in site.records)
    report: dict[str, Any] = {
        "site": args.site_name,
        "task": args.task,
        "folds": args.folds,
        "strategy": chosen.name,
        "strategy_description": chosen.description,
        "strategies": results,
        "before": before,
        "after": after,
        "images_used": len(site.records),
        "patients": len({r.group for r in site.records}),
        "images_skipped": site.skipped,
        "sources": dict(source_counts),
        "start": {"version": start.version, "arch": start.arch, "task": start.task},
        "model": {"version": meta.version, "checkpoint": str(checkpoint), "package": str(tarball)},
        "caveats": caveats(site, before, source_counts, after, trained_on(start)),
        "seconds": round(time.time() - started, 1),
    }
    predictions = {"before": before_predictions, "after": pooled[chosen.name]}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "predictions.json").write_text(json.dumps(predictions) + "\n")
    (args.out / "MODEL_CARD.md").write_text(model_card(report))
    sources = {r.path: r.source for r in site.records}
    heatmaps = sample_heatmaps(args.out / "build" / "artifacts", site)
    (args.out / "report.html").write_text(render(report, predictions, sources, heatmaps))
    publish_for_sagemaker(args)
    return report


def _sagemaker_default(variable: str, below: str = "") -> Path | None:
    """A SageMaker training container's folder (training.launch --entry adapt), where it runs in one."""
    value = os.environ.get(variable)
    return Path(value) / below if value else None


def publish_for_sagemaker(args: argparse.Namespace) -> None:
    """In a training job: the serving artifacts into SM_MODEL_DIR (SageMaker packs them as
    model.tar.gz), the report into SM_OUTPUT_DATA_DIR (output.tar.gz)."""
    if args.model_dir is not None:
        shutil.copytree(args.out / "build" / "artifacts", args.model_dir, dirs_exist_ok=True)
    if args.report_dir is not None:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        for name in ("report.json", "report.html", "predictions.json", "MODEL_CARD.md"):
            shutil.copyfile(args.out / name, args.report_dir / name)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    start = _sagemaker_default("SM_CHANNEL_START", "model.safetensors")
    data = _sagemaker_default("SM_CHANNEL_TRAINING")
    out = Path("/opt/ml/checkpoints/adapt") if os.environ.get("SM_MODEL_DIR") else None
    add("--checkpoint", type=Path, default=start, required=start is None, help="the model to start from (.safetensors)")
    add(
        "--data",
        type=Path,
        default=data,
        required=data is None,
        help="the site's labelled images, any layout training.data reads",
    )
    add(
        "--out",
        type=Path,
        default=out,
        required=out is None,
        help="report, adapted model, package and the resumable fold runs (in a training job: the synced checkpoints)",
    )
    add(
        "--model-dir",
        type=Path,
        default=_sagemaker_default("SM_MODEL_DIR"),
        help="also copy the serving artifacts here (default: $SM_MODEL_DIR)",
    )
    add(
        "--report-dir",
        type=Path,
        default=_sagemaker_default("SM_OUTPUT_DATA_DIR"),
        help="also copy the report here (default: $SM_OUTPUT_DATA_DIR)",
    )
    add("--task", default="binary", choices=("binary", "multiclass"), help="(default: %(default)s)")
    add("--folds", type=int, default=5, help="patient-grouped cross-validation folds (default: %(default)s)")
    add("--epochs", type=int, default=8, help="at most, per fine-tuning run (default: %(default)s)")
    add(
        "--time-limit", type=float, default=0, help="seconds for the whole run, shared by its trainings (default: none)"
    )
    add("--site-name", default="", help="how answers name the site (default: the data folder's name)")
    add("--seed", type=int, default=0, help="folds and training (default: %(default)s)")
    add("--model-version", default="", help="(default: site-SITE_NAME)")
    return p


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps(main(get_args_parser().parse_args()), indent=2))
