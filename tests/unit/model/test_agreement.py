"""The guard shared by int8 and fp16: which copy of the graph may be served, and on which images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from model.builder.agreement import compare, read_folds
from model.serving.backends import Outputs
from model.serving.metadata import ModelMetadata
from tests import images

LABELS = ["covid", "no_findings", "pneumonia"]


def _meta() -> ModelMetadata:
    return ModelMetadata("t", "1", "resnet18", "multiclass", LABELS, 224, "xray-gray-224-v1", gate={"threshold": 1.0})


def _outputs(n: int, seed: int = 0) -> Outputs:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 3)).astype(np.float32)
    gate = rng.uniform(0, 2, n).astype(np.float32)
    return Outputs(logits, np.zeros((n, 3, 2, 2), np.float32), gate, gate + 0.5)


def _truth(n: int) -> list[str]:
    return [LABELS[i % 3] for i in range(n)]


def test_an_identical_copy_agrees_everywhere_and_is_served() -> None:
    fp32 = _outputs(200)
    verdict = compare(_meta(), _truth(200), fp32, fp32, "fp16")
    assert (verdict["label_agreement"], verdict["gate_agreement"], verdict["auc_delta"]) == (1.0, 1.0, 0.0)
    assert verdict["served"] is True
    assert "covid_auc_fp16" in verdict


def test_two_labels_changed_in_a_hundred_refuse_the_copy() -> None:
    fp32 = _outputs(100)
    logits = fp32.logits.copy()
    for i in (3, 7):  # the runner-up becomes the winner
        order = np.argsort(logits[i])
        logits[i, order[-2]] = logits[i, order[-1]] + 1.0
    verdict = compare(_meta(), _truth(100), fp32, fp32._replace(logits=logits), "int8")
    assert verdict["label_agreement"] == pytest.approx(0.98)
    assert verdict["served"] is False


def test_one_label_changed_in_a_hundred_is_within_the_rule() -> None:
    fp32 = _outputs(100)
    logits = fp32.logits.copy()
    order = np.argsort(logits[5])
    logits[5, order[-2]] = logits[5, order[-1]] + 1.0
    verdict = compare(_meta(), ["no_findings"] * 100, fp32, fp32._replace(logits=logits), "int8")
    assert verdict["label_agreement"] == pytest.approx(0.99)
    assert verdict["served"] is True


def test_gate_decisions_that_move_refuse_the_copy_even_when_every_label_agrees() -> None:
    fp32 = _outputs(100)
    moved = fp32.gate_score.copy()
    moved[:2] = np.where(moved[:2] > 1.0, 0.5, 1.5)  # across the threshold
    verdict = compare(_meta(), _truth(100), fp32, fp32._replace(gate_score=moved), "int8")
    assert (verdict["label_agreement"], verdict["gate_agreement"]) == (1.0, pytest.approx(0.98))
    assert verdict["served"] is False


def test_calibration_images_come_from_the_training_folds_only(tmp_path: Path) -> None:
    rows = []
    for i in range(12):
        name = f"img{i}.png"
        (tmp_path / name).write_bytes(images.xray_png(64, seed=i))
        rows.append({"path": name, "label": LABELS[i % 3], "fold": str(i % 4)})
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "fold"])
        writer.writeheader()
        writer.writerows(rows)
    calibration, test = read_folds(tmp_path, manifest, _meta(), test_fold=0, val_fold=1, calibration_images=100)
    assert len(calibration.images) == 6  # folds 2 and 3
    assert len(test.images) == 3
    assert test.labels == [LABELS[0], LABELS[1], LABELS[2]]
    assert calibration.images.shape[1:] == (224, 224)  # through the served preprocessing
