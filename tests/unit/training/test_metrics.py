from __future__ import annotations

import numpy as np
import pytest
import torch

from training.calibration import fit_temperature
from training.metrics import compute_metrics, expected_calibration_error

LABELS = ["covid", "no_findings", "pneumonia"]


def _onehot(pred: list[int], k: int = 3, p: float = 0.8) -> np.ndarray:
    probs = np.full((len(pred), k), (1 - p) / (k - 1))
    probs[np.arange(len(pred)), pred] = p
    return probs


def test_metrics_match_a_hand_computed_example() -> None:
    # true:  c c c n n p p p ; pred: c c n n p p p c
    y = [0, 0, 0, 1, 1, 2, 2, 2]
    m = compute_metrics(y, _onehot([0, 0, 1, 1, 2, 2, 2, 0]), LABELS)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    # covid: precision 2/3, recall 2/3; no_findings: 1/2, 1/2; pneumonia: 2/3, 2/3
    assert m["per_class"]["covid"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["no_findings"]["f1"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 2 / 3) / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert m["covid_sensitivity"] == pytest.approx(2 / 3)
    # covid specificity: of the 5 non-covid, 1 (a pneumonia) was called covid -> 4/5
    assert m["covid_specificity"] == pytest.approx(4 / 5)


def test_perfect_binary_predictions_have_auc_one() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    m = compute_metrics([0, 0, 1, 1], probs, ["covid", "no_findings"])
    assert m["roc_auc"] == 1.0
    assert m["accuracy"] == 1.0


def test_ece_of_a_hand_computed_example() -> None:
    # Two samples at confidence 0.8, one right and one wrong: |0.5 - 0.8| = 0.3 in one bin.
    probs = np.array([[0.8, 0.2], [0.8, 0.2]])
    assert expected_calibration_error(probs, [0, 1]) == pytest.approx(0.3)


def test_temperature_scaling_cools_an_overconfident_model() -> None:
    torch.manual_seed(0)
    targets = torch.randint(0, 3, (400,))
    logits = torch.randn(400, 3)
    logits[torch.arange(400), targets] += 1.0  # some signal...
    logits *= 8.0  # ...far too confident
    assert fit_temperature(logits, targets) > 2.0
