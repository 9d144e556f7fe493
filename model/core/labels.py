"""The one place where the label sets of each task are defined.

The order of a label list is the order of the model's output units, so it is part of the model
contract: never reorder, only add new tasks.
"""

from __future__ import annotations

from typing import Final, Literal

Task = Literal["binary", "multiclass"]

COVID: Final = "covid"
NO_FINDINGS: Final = "no_findings"
PNEUMONIA: Final = "pneumonia"

LABELS: Final[dict[str, tuple[str, ...]]] = {
    "binary": (COVID, NO_FINDINGS),
    "multiclass": (COVID, NO_FINDINGS, PNEUMONIA),
}
TASKS: Final[tuple[str, ...]] = tuple(LABELS)
ALL_LABELS: Final[tuple[str, ...]] = LABELS["multiclass"]


def labels_for(task: str) -> tuple[str, ...]:
    """Return the ordered labels of ``task`` or raise ``ValueError`` naming the valid tasks."""
    try:
        return LABELS[task]
    except KeyError as exc:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}") from exc
