"""A model's leave-sources-out figures, measured against the goal, in its metadata."""

from __future__ import annotations

from typing import Any

from training.validation import GOAL, summary


def _figures(auc: float, sensitivity: float, specificity: float) -> dict[str, Any]:
    return {
        "pooled": {
            "n": 100,
            "auc": {"value": auc, "ci95": [auc - 0.05, auc + 0.05]},
            "sensitivity": {"value": sensitivity, "ci95": None},
            "specificity": {"value": specificity, "ci95": None},
        }
    }


def _report(**runs: dict[str, Any]) -> dict[str, Any]:
    return {"holdouts": ["a+x", "b+y"], "rows": {"resnet18:r": runs}}


def test_the_goal_is_met_only_when_every_holdout_meets_every_figure() -> None:
    good = _figures(GOAL["auc"], GOAL["sensitivity"], GOAL["specificity"])
    assert summary(_report(**{"a+x": good, "b+y": good}), "resnet18:r")["meets_goal"] is True
    weak = _figures(0.95, 0.95, GOAL["specificity"] - 0.01)
    assert summary(_report(**{"a+x": good, "b+y": weak}), "resnet18:r")["meets_goal"] is False


def test_a_holdout_that_did_not_run_is_not_a_pass() -> None:
    good = _figures(0.9, 0.9, 0.9)
    validation = summary(_report(**{"a+x": good}), "resnet18:r")
    assert validation["meets_goal"] is False
    assert list(validation["holdouts"]) == ["a+x"]


def test_the_mean_auc_is_over_the_holdouts_that_ran() -> None:
    validation = summary(_report(**{"a+x": _figures(0.3, 0, 0), "b+y": _figures(0.7, 0, 0)}), "resnet18:r")
    assert validation["mean_auc"] == 0.5
