"""Batch Lambda: SQS messages carrying S3 notifications -> classified results, notifications.

Also accepts a direct S3 event (no SQS in between), and acknowledges s3:TestEvent.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import clients, telemetry
from functions.common.config import Settings
from functions.common.errors import TransientError
from functions.common.pipeline import Decision
from functions.common.s3_events import ObjectRef, parse_sqs_body, refs_from_s3_event

logger = telemetry.logger()
tracer = telemetry.tracer()
metrics = Metrics()
settings = Settings.from_env()
pipeline = clients.classification_pipeline(settings)
# Failing every record is reported, not raised: the raised error would carry each record's traceback,
# and with it the chained botocore errors (whose messages hold object keys), into the function's log.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
idempotency_config = IdempotencyConfig(event_key_jmespath="[bucket, key, version]", raise_on_no_idempotency_key=True)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)


def _as_payload(ref: ObjectRef) -> dict[str, Any]:
    return {
        "bucket": ref.bucket,
        "key": ref.key,
        "version": ref.version_id or ref.etag or "",
        "ref": ref.__dict__,
    }


@idempotent_function(data_keyword_argument="obj", config=idempotency_config, persistence_store=persistence)
def finalize_once(obj: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """Duplicated S3 events arrive as different SQS messages; this runs once per object version."""
    outcome = pipeline.finalize(ObjectRef(**obj["ref"]), decision)  # type: ignore[arg-type]
    metrics.add_metric(name=outcome.status.capitalize(), unit=MetricUnit.Count, value=1)
    return {"result_id": outcome.result_id, "status": outcome.status}


def handle_object(ref: ObjectRef, decision: Decision, receive_count: int) -> None:
    if isinstance(decision, TransientError):
        if receive_count >= settings.max_receive_count:
            pipeline.record_failure(ref, decision)
            metrics.add_metric(name="Failed", unit=MetricUnit.Count, value=1)
        raise decision
    finalize_once(obj=_as_payload(ref), decision=decision)


def record_handler(record: SQSRecord, decisions: dict[str, Decision]) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    for ref in parse_sqs_body(record.body):
        handle_object(ref, decisions[ref.result_id], receive_count)


def all_refs(event: dict[str, Any]) -> list[ObjectRef]:
    refs: list[ObjectRef] = []
    for record in event.get("Records", []):
        try:
            refs += parse_sqs_body(record["body"])
        except (ValueError, KeyError):
            logger.warning("unparseable message; it will fail alone", extra={"message_id": record.get("messageId")})
    return refs


def handle_direct_s3(event: dict[str, Any]) -> dict[str, Any]:
    refs = refs_from_s3_event(event)
    decisions = pipeline.decide(refs)
    for ref in refs:
        handle_object(ref, decisions[ref.result_id], receive_count=1)
    return {"processed": len(refs)}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:s3":
        return handle_direct_s3(event)
    if "Records" not in event:
        logger.info("not an S3 or SQS event (s3:TestEvent?): acknowledged, nothing written")
        return {"batchItemFailures": []}
    decisions = pipeline.decide(all_refs(event))
    handler = functools.partial(record_handler, decisions=decisions)
    return dict(process_partial_response(event=event, record_handler=handler, processor=processor, context=context))


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return cast(dict[str, Any], handle(event, context))
