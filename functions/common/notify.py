"""SNS notifications of results; attributes let a subscriber filter (e.g. only covid)."""

from __future__ import annotations

import json
from typing import Any

from functions.common.result import NOTIFIED_FIELDS, Result, public


class Notifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, result: Result) -> None:
        message = public(result, NOTIFIED_FIELDS)
        attributes = {
            "status": result["status"],
            "model_version": result.get("model_version") or "none",
            "site_validation": result.get("site_validation") or "none",
            "label": result.get("label") or "none",
        }
        self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(message),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
