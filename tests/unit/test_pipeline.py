"""The batch pipeline's logic with moto (S3, DynamoDB, SNS in-process) and a stand-in endpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import boto3
import pytest

from functions.common.endpoint import Verdict
from functions.common.errors import (
    EndpointUnavailableError,
    ImageRejectedError,
    ObjectMissingError,
    ObjectTooLargeError,
)
from functions.common.notify import Notifier
from functions.common.pipeline import ClassificationPipeline
from functions.common.results import ResultsStore
from functions.common.s3_events import ObjectRef
from tests import images

MODEL = {"name": "m", "version": "v1", "task": "binary", "labels": ["covid", "no_findings"]}


class RecordingEndpoint:
    """Answers covid for every image and records what it was sent."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    def classify(self, batch: Sequence[bytes]) -> list[Verdict]:
        self.calls.append(len(batch))
        if self.fail:
            raise EndpointUnavailableError("throttled")
        return [Verdict("covid", {"covid": 0.8, "no_findings": 0.2}, MODEL) for _ in batch]


@pytest.fixture
def env(results_table: Any) -> dict[str, Any]:
    s3, sns, sqs = boto3.client("s3"), boto3.client("sns"), boto3.client("sqs")
    s3.create_bucket(Bucket="uploads-bucket")
    topic = sns.create_topic(Name="results")["TopicArn"]
    queue = sqs.create_queue(QueueName="notes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    endpoint = RecordingEndpoint()
    pipeline = ClassificationPipeline(s3, endpoint, ResultsStore(results_table), Notifier(sns, topic), 1_000_000)  # type: ignore[arg-type]
    return {
        "s3": s3,
        "sqs": sqs,
        "queue": queue,
        "endpoint": endpoint,
        "pipeline": pipeline,
        "table": results_table,
    }


def _put(env: dict[str, Any], key: str, data: bytes) -> ObjectRef:
    etag = env["s3"].put_object(Bucket="uploads-bucket", Key=key, Body=data)["ETag"].strip('"')
    return ObjectRef("uploads-bucket", key, None, etag, len(data), "0A", "2026-11-26T10:00:00Z")


def _notes(env: dict[str, Any]) -> list[dict[str, Any]]:
    messages = (
        env["sqs"]
        .receive_message(QueueUrl=env["queue"], MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def test_good_image_is_classified_stored_and_notified(env: dict[str, Any]) -> None:
    ref = _put(env, "uploads/a.png", images.png(128))
    decisions = env["pipeline"].decide([ref])
    outcome = env["pipeline"].finalize(ref, decisions[ref.result_id])
    assert outcome.status == "classified"
    assert env["table"].get_item(Key={"pk": ref.result_id})["Item"]["label"] == "covid"
    (note,) = _notes(env)
    assert note["status"] == "classified"
    assert "uploads/a.png" not in json.dumps(note)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(images.PDF, "not_an_image"), (images.truncated(images.png(256)), "truncated"), (b"", "empty")],
)
def test_bad_files_are_rejected_without_calling_the_endpoint(env: dict[str, Any], data: bytes, reason: str) -> None:
    ref = _put(env, "uploads/bad.png", data)
    decision = env["pipeline"].decide([ref])[ref.result_id]
    assert isinstance(decision, ImageRejectedError)
    assert decision.reason == reason
    assert env["endpoint"].calls == []
    assert env["pipeline"].finalize(ref, decision).status == "rejected"


def test_oversize_object_is_rejected_from_the_event_size_alone(env: dict[str, Any]) -> None:
    ref = ObjectRef("uploads-bucket", "uploads/huge.png", None, "e", 5_000_000, "0A", "")
    assert isinstance(env["pipeline"].decide([ref])[ref.result_id], ObjectTooLargeError)


def test_deleted_object_is_rejected_as_missing(env: dict[str, Any]) -> None:
    ref = ObjectRef("uploads-bucket", "uploads/gone.png", None, "e", 10, "0A", "")
    assert isinstance(env["pipeline"].decide([ref])[ref.result_id], ObjectMissingError)


def test_one_endpoint_call_for_the_whole_batch_and_duplicates_sent_once(env: dict[str, Any]) -> None:
    refs = [_put(env, f"uploads/{i}.png", images.png(96, seed=i)) for i in range(5)]
    env["pipeline"].decide([*refs, refs[0]])
    assert env["endpoint"].calls == [5]


def test_a_duplicate_finalize_writes_and_notifies_once(env: dict[str, Any]) -> None:
    ref = _put(env, "uploads/a.png", images.png(128))
    decision = env["pipeline"].decide([ref])[ref.result_id]
    assert env["pipeline"].finalize(ref, decision).status == "classified"
    assert env["pipeline"].finalize(ref, decision).status == "duplicate"
    assert len(_notes(env)) == 1


def test_endpoint_outage_is_transient_for_every_image(env: dict[str, Any]) -> None:
    env["endpoint"].fail = True
    refs = [_put(env, f"uploads/{i}.png", images.png(96, seed=i)) for i in range(3)]
    decisions = env["pipeline"].decide(refs)
    assert all(isinstance(decisions[r.result_id], EndpointUnavailableError) for r in refs)


def test_record_failure_writes_failed_and_notifies(env: dict[str, Any]) -> None:
    ref = _put(env, "uploads/a.png", images.png(128))
    env["pipeline"].record_failure(ref, EndpointUnavailableError("x"))
    assert env["table"].get_item(Key={"pk": ref.result_id})["Item"]["status"] == "failed"
    assert _notes(env)[0]["status"] == "failed"
