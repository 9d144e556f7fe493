"""Whether a faster copy of the served graph answers as the fp32 graph does: the guard that int8 on the
CPU (``model.builder.quantize``) and fp16 on the GPU (``model.builder.half``) must both pass before they are served.

The copy runs side by side with fp32 on the test fold, and it passes when its served labels (after
the temperature and the COVID operating point) agree on >= 99 % of images, its gate decisions agree
on >= 99 %, and its COVID-vs-rest ROC AUC moves by <= 0.005. The figures, and the verdict, go into
``metadata.json`` under the copy's own key.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from model.builder.package import build_tarball
from model.core.errors import GateRefusedError
from model.core.lung_fields import LungFinder
from model.core.preprocessing import prepare, to_batch
from model.core.presets import get_preset
from model.serving.backends import Backend, Outputs
from model.serving.metadata import ModelMetadata
from model.serving.policy import decide, gate_decisions, softmax

MIN_AGREEMENT: Final = 0.99
MAX_AUC_DELTA: Final = 0.005
RULE: Final = f"label and gate agreement >= {MIN_AGREEMENT}, |AUC delta| <= {MAX_AUC_DELTA}"
_BATCH: Final = 16

Uint8Images = npt.NDArray[np.uint8]


class Fold(NamedTuple):
    """Images of one split of a manifest, through the served preprocessing, with their labels."""

    images: Uint8Images
    labels: list[str]


def read_folds(
    data: Path,
    manifest: Path,
    meta: ModelMetadata,
    test_fold: int,
    val_fold: int,
    calibration_images: int,
    lungs: LungFinder | None = None,
) -> tuple[Fold, Fold]:
    """``calibration_images`` images drawn (seeded) from the training folds, and the whole test fold, of
    ``manifest`` (``training.data``'s: path, label, fold, ...), through the preset (a lung-centred one
    with ``lungs``, leaving out what its gate refuses). ``model`` may not import ``training``,
    hence the fold rule written here too: neither the test nor the validation fold is for training."""
    preset = get_preset(meta.preset)
    with manifest.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] in meta.labels]
    train = [r for r in rows if int(r["fold"]) not in (test_fold, val_fold)]
    test = [r for r in rows if int(r["fold"]) == test_fold]
    chosen = np.random.default_rng(0).permutation(len(train))[:calibration_images]

    def fold(picked: Sequence[dict[str, str]]) -> Fold:
        images, labels = [], []
        for r in picked:
            try:
                images.append(prepare((data / r["path"]).read_bytes(), preset, lungs))
                labels.append(r["label"])
            except GateRefusedError:  # a lung-centred preset's gate: served, it would be refused
                continue
        size = meta.input_size
        stacked = np.stack(images) if images else np.empty((0, size, size), np.uint8)
        return Fold(stacked, labels)

    return fold([train[i] for i in chosen]), fold(test)


def run_batched(backend: Backend, images: Uint8Images) -> Outputs:
    """``images`` through ``backend`` a batch at a time, the outputs joined."""
    parts = [backend.run(to_batch(list(images[i : i + _BATCH]))) for i in range(0, len(images), _BATCH)]
    return Outputs(*(np.concatenate([getattr(p, f) for p in parts]) for f in Outputs._fields))


def ms_per_image(backend: Backend, image: Uint8Images, seconds: float = 3.0) -> float:
    """Batch-1 wall time of ``backend`` on ``image``, after three warm-up runs."""
    batch = to_batch([image])
    for _ in range(3):
        backend.run(batch)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        backend.run(batch)
        runs += 1
    return (time.perf_counter() - start) / runs * 1000


def covid_auc(truth: Sequence[str], probs: npt.NDArray[np.float32], labels: Sequence[str]) -> float | None:
    """COVID-vs-rest ROC AUC; none where the task or the images have no COVID (or nothing else)."""
    from sklearn.metrics import roc_auc_score

    y = np.array([t == "covid" for t in truth])
    if "covid" not in labels or y.all() or not y.any():
        return None
    return float(roc_auc_score(y, probs[:, list(labels).index("covid")]))


def compare(meta: ModelMetadata, truth: Sequence[str], fp32: Outputs, other: Outputs, name: str) -> dict[str, Any]:
    """The guard's figures for ``other`` (called ``name``: ``int8``, ``fp16``) against ``fp32`` on the
    same images, labelled ``truth``, and whether it is served."""
    decided, aucs, gates = [], [], []
    for out in (fp32, other):
        probs = softmax(out.logits, meta.temperature)
        decided.append(np.array([decide(p, meta.labels, meta.covid_threshold) for p in probs]))
        aucs.append(covid_auc(truth, probs, meta.labels))
        gates.append(
            gate_decisions(out.gate_score, out.turned_gate_score, meta.gate_threshold, meta.gate_upright_threshold)
        )
    label_agreement = float((decided[0] == decided[1]).mean())
    gate_agreement = float((gates[0] == gates[1]).mean())
    delta = None if aucs[0] is None or aucs[1] is None else aucs[1] - aucs[0]
    return {
        "images": len(truth),
        "label_agreement": label_agreement,
        "gate_agreement": gate_agreement,
        "covid_auc_fp32": aucs[0],
        f"covid_auc_{name}": aucs[1],
        "auc_delta": delta,
        "max_gate_score_change": float(np.abs(fp32.gate_score - other.gate_score).max()),
        "rule": RULE,
        "served": (
            label_agreement >= MIN_AGREEMENT
            and gate_agreement >= MIN_AGREEMENT
            and (delta is None or abs(delta) <= MAX_AUC_DELTA)
        ),
    }


def guard_parser(description: str | None) -> argparse.ArgumentParser:
    """The command line both guards share: the model directory, the data and manifest it was trained
    on, the folds, and the package to re-pack."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("build/model/artifacts"), help="(default: %(default)s)")
    parser.add_argument("--data", type=Path, required=True, help="the images the model was trained on")
    parser.add_argument("--manifest", type=Path, required=True, help="their manifest.csv (training.data), with folds")
    parser.add_argument("--test-fold", type=int, default=0, help="the guard's images (default: %(default)s)")
    parser.add_argument("--val-fold", type=int, default=1, help="never calibrated on (default: %(default)s)")
    parser.add_argument("--package", type=Path, default=None, help="re-pack this model.tar.gz (default: none)")
    return parser


def publish(
    args: argparse.Namespace, verdict: dict[str, Any], record: Callable[[Path, dict[str, Any]], None]
) -> dict[str, Any]:
    """A guard command's last step: the verdict says where it was guarded, goes into the model
    directory's ``metadata.json`` (``record``) and, with ``--package``, into a re-packed package."""
    verdict["guarded_on"] = {"split": "test", "fold": args.test_fold}
    record(args.artifacts, verdict)
    if args.package is not None:
        build_tarball(args.artifacts, args.package)
    return verdict
