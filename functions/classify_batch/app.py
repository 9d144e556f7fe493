"""Batch Lambda: SQS messages carrying S3 notifications -> classified results, notifications.

The handler parses the event (each SQS body once), hands the objects to
``ClassificationPipeline.process`` and reports the messages to retry as ``batchItemFailures``. Also
accepts a direct S3 event (no SQS in between), and acknowledges s3:TestEvent.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import clients, telemetry
from functions.common.config import Settings
from functions.common.deadline import ContextDeadline
from functions.common.drift import drift_values
from functions.common.pipeline import Outcome
from functions.common.s3_events import ObjectRef, parse_sqs_body, refs_from_s3_event

logger = telemetry.logger()
tracer = telemetry.tracer()
metrics = Metrics()
settings = Settings.from_env()
pipeline = clients.classification_pipeline(settings)


def parse_records(records: list[dict[str, Any]]) -> dict[str, list[ObjectRef] | None]:
    """Message id -> its objects, or None for a body that is not an S3 event (it fails alone)."""
    parsed: dict[str, list[ObjectRef] | None] = {}
    for record in records:
        try:
            parsed[record["messageId"]] = parse_sqs_body(record["body"])
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("malformed message: it fails alone", extra={"message_id": record.get("messageId")})
            metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
            parsed[str(record.get("messageId"))] = None
    return parsed


def count_outcomes(outcomes: dict[str, Outcome]) -> None:
    for outcome in outcomes.values():
        metrics.add_metric(name=outcome.status.capitalize(), unit=MetricUnit.Count, value=1)
        if outcome.reason == "EndpointContractError":
            metrics.add_metric(name="EndpointContractError", unit=MetricUnit.Count, value=1)
    for name, value in drift_values(outcomes.values()):
        unit = MetricUnit.Count if name == "GateRefused" else MetricUnit.NoUnit
        metrics.add_metric(name=name, unit=unit, value=value)


def handle_sqs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event["Records"]
    parsed = parse_records(records)
    counts = {r["messageId"]: int(r.get("attributes", {}).get("ApproximateReceiveCount", 1)) for r in records}
    deliveries = [(ref, counts[mid]) for mid, refs in parsed.items() if refs for ref in refs]
    outcomes = pipeline.process(deliveries, ContextDeadline(context))
    count_outcomes(outcomes)
    retry = [mid for mid, refs in parsed.items() if refs is None or any(outcomes[ref.result_id].retry for ref in refs)]
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in retry]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:s3":
        outcomes = pipeline.process([(ref, 1) for ref in refs_from_s3_event(event)], ContextDeadline(context))
        count_outcomes(outcomes)
        return {"processed": len(outcomes), "retry": sum(o.retry for o in outcomes.values())}
    if "Records" not in event:
        logger.info("not an S3 or SQS event (s3:TestEvent?): acknowledged, nothing written")
        return {"batchItemFailures": []}
    return handle_sqs(event, context)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)  # type: ignore[no-any-return]
