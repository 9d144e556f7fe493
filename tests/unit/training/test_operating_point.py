"""The COVID operating point: how it is chosen and how the served model applies it."""

from __future__ import annotations

import numpy as np
import pytest

from model.serving.policy import decide
from training.operating_point import choose_threshold, rates

LABELS = ["covid", "no_findings", "pneumonia"]


def test_the_threshold_is_the_most_specific_one_that_keeps_the_sensitivity() -> None:
    is_covid = np.array([True] * 10 + [False] * 10)
    p = np.r_[np.linspace(0.95, 0.05, 10), np.linspace(0.6, 0.0, 10)]
    threshold = choose_threshold(is_covid, p, 0.9)
    assert rates(is_covid, p, threshold)["sensitivity"] >= 0.9
    stricter = np.nextafter(threshold, 1.0)
    assert rates(is_covid, p, stricter)["sensitivity"] < 0.9


def test_without_covid_images_there_is_no_operating_point() -> None:
    with pytest.raises(ValueError, match="no COVID images"):
        choose_threshold(np.array([False, False]), np.array([0.1, 0.2]))


@pytest.mark.parametrize(
    ("probs", "threshold", "label"),
    [
        ([0.30, 0.50, 0.20], 0.25, "covid"),  # over the threshold: covid, though not the most probable
        ([0.20, 0.30, 0.50], 0.25, "pneumonia"),  # under it: the most probable other label
        ([0.60, 0.10, 0.30], 0.70, "pneumonia"),  # the most probable is covid, but under the threshold
        ([0.60, 0.10, 0.30], None, "covid"),  # no operating point: the most probable label
    ],
)
def test_the_served_decision(probs: list[float], threshold: float | None, label: str) -> None:
    assert LABELS[decide(np.array(probs, np.float32), LABELS, threshold)] == label
