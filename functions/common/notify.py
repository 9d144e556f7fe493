"""SNS notifications of results; attributes let a subscriber filter (e.g. only covid)."""

from __future__ import annotations

import json
from typing import Any

# What a notification may carry: never the object key or anything else that could identify a patient.
_PUBLIC_FIELDS = (
    "result_id",
    "status",
    "label",
    "probabilities",
    "reason",
    "model_version",
    "created_at",
    "source",
)


class Notifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, result: dict[str, Any]) -> None:
        message = {k: result[k] for k in _PUBLIC_FIELDS if result.get(k) is not None}
        attributes = {
            "status": result["status"],
            "model_version": result.get("model_version") or "none",
            "label": result.get("label") or "none",
        }
        self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(message),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
