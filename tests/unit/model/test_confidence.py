"""How the served model says that an answer is of low confidence."""

from __future__ import annotations

import numpy as np
import pytest

from model.serving.metadata import ModelMetadata
from model.serving.policy import confidence

LABELS = ["covid", "no_findings", "pneumonia"]


def metadata(meets_goal: bool | None, threshold: float | None = None) -> ModelMetadata:
    return ModelMetadata(
        name="m",
        version="1",
        arch="resnet18",
        task="multiclass",
        labels=LABELS,
        input_size=224,
        preset="xray-gray-224-v2",
        operating_point={} if threshold is None else {"threshold": threshold},
        validation={} if meets_goal is None else {"meets_goal": meets_goal},
    )


@pytest.mark.parametrize("meets_goal", [None, False], ids=["never-validated", "goal-not-met"])
def test_a_model_not_shown_to_work_on_unseen_sources_is_always_of_low_confidence(meets_goal: bool | None) -> None:
    answer = confidence(np.array([0.98, 0.01, 0.01]), LABELS, metadata(meets_goal))
    assert answer == {"level": "low", "reasons": ["not_validated_on_unseen_sources"]}


def test_a_clear_answer_of_a_validated_model_is_of_normal_confidence() -> None:
    assert confidence(np.array([0.98, 0.01, 0.01]), LABELS, metadata(True)) == {"level": "normal", "reasons": []}


@pytest.mark.parametrize(
    ("probs", "threshold"),
    [([0.40, 0.45, 0.15], None), ([0.30, 0.60, 0.10], 0.25)],
    ids=["top-two-close", "near-the-operating-point"],
)
def test_an_answer_close_to_the_other_one_is_borderline(probs: list[float], threshold: float | None) -> None:
    answer = confidence(np.array(probs), LABELS, metadata(True, threshold))
    assert answer == {"level": "low", "reasons": ["borderline"]}


def test_far_from_the_operating_point_is_not_borderline_even_if_covid_is_not_the_most_probable() -> None:
    answer = confidence(np.array([0.45, 0.50, 0.05]), LABELS, metadata(True, threshold=0.2))
    assert answer["level"] == "normal"


def site_validated(meets_goal: bool) -> ModelMetadata:
    meta = metadata(None)
    meta.site_validation = {"site": "St Example", "n": 82, "meets_goal": meets_goal}
    return meta


def test_a_clear_answer_of_a_model_validated_on_its_site_is_of_normal_confidence_and_names_the_site() -> None:
    answer = confidence(np.array([0.98, 0.01, 0.01]), LABELS, site_validated(True))
    assert answer == {"level": "normal", "reasons": [], "validated_on": "St Example"}


def test_a_site_validation_that_missed_the_goal_leaves_confidence_low() -> None:
    answer = confidence(np.array([0.98, 0.01, 0.01]), LABELS, site_validated(False))
    assert answer["level"] == "low"
    assert "validated_on" not in answer


def test_a_site_validated_answer_near_the_operating_point_is_still_borderline() -> None:
    meta = site_validated(True)
    meta.operating_point = {"threshold": 0.5}
    answer = confidence(np.array([0.51, 0.48, 0.01]), LABELS, meta)
    assert answer["reasons"] == ["borderline"]


def test_the_model_info_of_every_answer_names_the_site_validation() -> None:
    from model.serving.runtime import Predictor

    predictor = Predictor(None, site_validated(True))  # type: ignore[arg-type]  (no backend is run)
    assert predictor.model_info()["site_validation"] == "St Example"
    assert "site_validation" not in Predictor(None, metadata(True)).model_info()  # type: ignore[arg-type]
