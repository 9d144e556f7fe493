"""Dead-letter Lambda: whatever reaches the dead-letter queue ends as a `failed` result, notified once.

The batch function records `failed` itself on a message's last receive; this function covers what it
cannot see (an invocation that crashed, ran out of memory or timed out on that last receive). Each
message is then parked in the parked queue, from which an operator redrives it after a fix
(``aws sqs start-message-move-task``; ``make redrive`` on the local stack). Re-running on the same
message changes nothing: `failed` is written once and never over a final result.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import clients, telemetry
from functions.common.config import Settings, required
from functions.common.s3_events import parse_sqs_body

logger = telemetry.logger()
tracer = telemetry.tracer()
metrics = Metrics()
settings = Settings.from_env()
parked_queue_url = required("PARKED_QUEUE_URL")
pipeline = clients.classification_pipeline(settings)
sqs = clients.sqs()


def settle_dead_letter(record: dict[str, Any]) -> None:
    try:
        refs = parse_sqs_body(record["body"])
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.warning("malformed message dead-lettered", extra={"message_id": record.get("messageId")})
        metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
        refs = []
    for ref in refs:
        outcome = pipeline.record_failure(ref, "dead_lettered")
        metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
        logger.info("dead letter settled", extra={"result_id": outcome.result_id})
    sqs.send_message(QueueUrl=parked_queue_url, MessageBody=record["body"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        try:
            settle_dead_letter(record)
        except Exception:  # retried by the queue; after its own redrive limit it is parked unsettled
            logger.exception("could not settle a dead letter", extra={"message_id": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)  # type: ignore[no-any-return]
