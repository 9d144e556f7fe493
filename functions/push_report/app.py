"""Report push Lambda: each DICOM SR the pipeline stores, sent to the hospital's PACS (C-STORE).

Fed by the report outbox queue (S3 events of ``report.dcm`` objects); exists only where the stack's
PacsDestinationHost is set. A report the PACS does not take is reported as a batch item failure: the
queue retries it, then keeps it in the report dead-letter queue, alarmed, for a redrive
(``functions.common.report_push``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import clients, telemetry
from functions.common.config import PushSettings, required
from functions.common.errors import TransientError
from functions.common.explanations import S3Explanations
from functions.common.report_push import CStoreSender, ReportPusher, quiet_pynetdicom

logger = telemetry.logger()
tracer = telemetry.tracer()
metrics = Metrics()
settings = PushSettings.from_env()
quiet_pynetdicom()
pusher = ReportPusher(
    S3Explanations(clients.s3(), required("UPLOAD_BUCKET"), settings.explanation_prefix),
    CStoreSender(settings),
    settings.explanation_prefix,
)


def push_record(record: dict[str, Any]) -> bool:
    """Whether the record is settled (pushed, or nothing to push); False: the queue must retry it."""
    try:
        pushed = pusher.push(record["body"])
    except (ValueError, KeyError, TypeError, AttributeError):
        # Not an S3 event: no report can ever come of it, so it is dropped, counted.
        logger.warning("malformed outbox message dropped", extra={"message_id": record.get("messageId")})
        metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
        return True
    except TransientError as exc:
        logger.warning("report push failed; the queue retries it", extra={"error": str(exc)})
        metrics.add_metric(name="ReportPushFailed", unit=MetricUnit.Count, value=1)
        return False
    metrics.add_metric(name="ReportsPushed", unit=MetricUnit.Count, value=len(pushed))
    return True


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        try:
            settled = push_record(record)
        except Exception:  # anything unforeseen: retried like a refused push, never dropped
            logger.exception("unexpected error pushing a report", extra={"message_id": record.get("messageId")})
            settled = False
        if not settled:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)  # type: ignore[no-any-return]
