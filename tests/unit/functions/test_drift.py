"""Drift without labels: what the batch function publishes per result, and the alarms' metric math,
evaluated as CloudWatch would on the expression template.yaml deploys."""

from __future__ import annotations

import ast
import json
import operator
from typing import Any

import pytest

from functions.common.drift import REFUSAL_SHARE, drift_values
from functions.common.pipeline import Outcome
from local_stack.template import Template

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expression: str, values: dict[str, float]) -> float | None:
    """A CloudWatch metric-math expression of + - * / and metric ids; None where CloudWatch would
    return no data point (a division by zero)."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return float(_OPERATORS[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        raise ValueError(f"not metric math this evaluator knows: {ast.dump(node)}")

    try:
        return walk(ast.parse(expression, mode="eval").body)
    except ZeroDivisionError:
        return None


@pytest.fixture(scope="module")
def template() -> Template:
    return Template()


def _alarm(template: Template, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template.resources[name]["Properties"]
    return properties


def _breaches(template: Template, refused: float, classified: float) -> bool:
    alarm = _alarm(template, "DriftRefusalShareAlarm")
    (returned,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    share = evaluate(returned["Expression"], {"refused": refused, "classified": classified})
    threshold = float(template.parameter(alarm["Threshold"]["Ref"]))
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    return share is not None and share > threshold


def test_the_deployed_expression_is_the_one_the_code_documents(template: Template) -> None:
    alarm = _alarm(template, "DriftRefusalShareAlarm")
    assert [m["Expression"] for m in alarm["Metrics"] if "Expression" in m] == [REFUSAL_SHARE]
    ids = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert ids == {"refused": "GateRefused", "classified": "Classified"}


def test_a_day_refusing_as_validation_did_does_not_alarm(template: Template) -> None:
    assert not _breaches(template, refused=1, classified=99)


def test_a_day_refusing_a_tenth_of_the_uploads_alarms(template: Template) -> None:
    assert _breaches(template, refused=10, classified=90)


def test_a_day_without_uploads_gives_no_data_point_and_does_not_alarm(template: Template) -> None:
    assert not _breaches(template, refused=0, classified=0)
    assert _alarm(template, "DriftRefusalShareAlarm")["TreatMissingData"] == "notBreaching"


def test_the_gate_score_alarm_watches_the_daily_median(template: Template) -> None:
    alarm = _alarm(template, "DriftGateScoreAlarm")
    assert (alarm["MetricName"], alarm["ExtendedStatistic"], alarm["Period"]) == ("GateScore", "p50", 86400)
    assert float(template.parameter(alarm["Threshold"]["Ref"])) == pytest.approx(1.46)


def test_the_dashboard_shows_both(template: Template) -> None:
    body = json.dumps(_alarm(template, "OperationsDashboard")["DashboardBody"])
    assert "GateScore" in body
    assert REFUSAL_SHARE in body


def test_each_classified_or_gate_refused_result_publishes_numbers_only() -> None:
    outcomes = [
        Outcome("r1", "classified", gate_score=1.2, p_covid=0.7),
        Outcome("r2", "rejected", "not_a_chest_xray", gate_score=2.5),
        Outcome("r3", "rejected", "truncated"),
        Outcome("r4", "duplicate"),
        Outcome("r5", "retry", "EndpointUnavailableError"),
    ]
    assert list(drift_values(outcomes)) == [
        ("GateScore", 1.2),
        ("PCovid", 0.7),
        ("GateScore", 2.5),
        ("GateRefused", 1.0),
    ]
