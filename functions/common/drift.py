"""What the batch function publishes per result, without identifiers, to watch a site drift without labels.

Every classified or gate-refused result adds its gate score (``GateScore``) and every classified one
its p(covid) (``PCovid``), as EMF metric values (one value a result; CloudWatch keeps their
distribution, so a day's median is the ``p50`` statistic); every gate refusal counts one
``GateRefused``. Two alarms of template.yaml watch them over a day:

- ``DriftRefusalShareAlarm``: ``REFUSAL_SHARE`` (refused / (refused + classified)) over
  ``DriftRefusalShareThreshold`` (default 0.05, five times the 1 % the gate was fitted to refuse on
  validation);
- ``DriftGateScoreAlarm``: the day's median gate score over ``DriftGateScoreThreshold`` (default 1.46,
  the bundled model's 90th percentile validation score: a median there means the typical image now
  looks like the least typical tenth did).

No result id, key, label or owner is a dimension or a value: only numbers and the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, Protocol

from model.core.errors import NoLungFieldsError, NotAChestXrayError, NotUprightError

GATE_REASONS: Final = frozenset({NotAChestXrayError.reason, NotUprightError.reason, NoLungFieldsError.reason})
# The alarm's metric math, with the metric ids of template.yaml's DriftRefusalShareAlarm.
REFUSAL_SHARE: Final = "refused / (refused + classified)"


class Scored(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def gate_score(self) -> float | None: ...

    @property
    def p_covid(self) -> float | None: ...


def drift_values(outcomes: Iterable[Scored]) -> Iterator[tuple[str, float]]:
    """(metric name, value) pairs of an invocation's outcomes (duplicates and retries add nothing)."""
    for outcome in outcomes:
        if outcome.status not in ("classified", "rejected"):
            continue
        if outcome.gate_score is not None:
            yield "GateScore", outcome.gate_score
        if outcome.status == "classified" and outcome.p_covid is not None:
            yield "PCovid", outcome.p_covid
        if outcome.reason in GATE_REASONS:
            yield "GateRefused", 1.0
