"""The pipeline end to end on the local stack: moto server, the local endpoint, the bundled model."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from local_stack.faults import FaultSwitch
from local_stack.harness import Harness
from local_stack.redrive import queue_url, redrive
from local_stack.stack import LocalDeployment
from tests import dicoms, images

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _key(aws: Harness, name: str) -> str:
    return f"{aws.prefix}{uuid.uuid4().hex[:8]}/{name}"


def test_every_upload_is_accounted_for(aws: Harness) -> None:
    good = {f"s{i}.png": p.read_bytes() for i, p in enumerate(images.SAMPLE_XRAYS)}
    good["synthetic.jpg"] = images.xray_jpeg(400, seed=3)
    bad = {
        "doc.png": images.PDF,
        "page.png": images.HTML,
        "cut.png": images.truncated(images.xray_png(300, seed=2)),
        "dot.png": images.png(1),
        "bomb.png": images.huge_declared_png(),
    }
    keys = {aws.upload(_key(aws, name), data): name for name, data in {**good, **bad}.items()}
    results = aws.wait_for_results(list(keys))
    assert len(results) == len(keys) == 12
    assert {keys[k] for k, r in results.items() if r["status"] == "classified"} == set(good)
    reasons = {keys[k]: r["reason"] for k, r in results.items() if r["status"] == "rejected"}
    assert reasons == {
        "doc.png": "not_an_image",
        "page.png": "not_an_image",
        "cut.png": "truncated",
        "dot.png": "too_small",
        "bomb.png": "decompression_bomb",
    }
    aws.wait_idle()
    notes = aws.drain_notifications()
    assert sorted(n["result_id"] for n in notes) == sorted(r["result_id"] for r in results.values())


def test_keys_with_spaces_plus_and_unicode(aws: Harness) -> None:
    key = aws.upload(f"{aws.prefix}{uuid.uuid4().hex[:6]}/Röntgen a+b %2B c.png", images.xray_png(128))
    assert aws.wait_for_results([key])[key]["status"] == "classified"


def test_duplicated_event_gives_one_result_and_one_notification(aws: Harness) -> None:
    key = aws.upload(_key(aws, "dup.png"), images.xray_png(160, seed=11))
    (result,) = aws.wait_for_results([key]).values()
    aws.wait_idle()
    etag = aws.s3.head_object(Bucket=aws.bucket, Key=key)["ETag"].strip('"')
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-26T10:00:00Z",
        "s3": {"bucket": {"name": aws.bucket}, "object": {"key": key.replace(" ", "+"), "eTag": etag, "size": 10}},
    }
    invocations = aws.stack.batch_invocations()
    aws.sqs.send_message(QueueUrl=aws.stack.template.ref("IngestQueue"), MessageBody=json.dumps({"Records": [record]}))
    deadline = time.monotonic() + 20
    while aws.stack.batch_invocations() == invocations and time.monotonic() < deadline:
        time.sleep(0.1)
    aws.wait_idle()
    assert len(aws.results_for(key)) == 1
    assert [n["result_id"] for n in aws.drain_notifications()] == [result["result_id"]]


def test_one_corrupt_message_in_a_batch_of_ten_fails_alone(aws: Harness) -> None:
    records = []
    for i in range(9):
        key = f"elsewhere/{uuid.uuid4().hex[:6]}-{i}.png"  # outside the prefix: no S3 notification of its own
        body = images.PDF if i == 4 else images.xray_png(200, seed=i)
        etag = aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=body)["ETag"].strip('"')
        s3_event = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "",
                    "s3": {"bucket": {"name": aws.bucket}, "object": {"key": key, "eTag": etag}},
                }
            ]
        }
        records.append(
            {
                "messageId": f"m{i}",
                "receiptHandle": "r",
                "body": json.dumps(s3_event),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
                "messageAttributes": {},
                "md5OfBody": "",
            }
        )
    records.insert(6, {**records[0], "messageId": "corrupt", "body": "{not json"})
    records.insert(2, {**records[0], "messageId": "empty-list", "body": "[]"})
    response = aws.stack.batch.invoke({"Records": records})
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["corrupt", "empty-list"]
    statuses = sorted(n["status"] for n in aws.drain_notifications())
    assert statuses == ["classified"] * 8 + ["rejected"]


def test_endpoint_failures_are_retried_then_dead_lettered_parked_and_redriven(
    aws: Harness, faults: FaultSwitch
) -> None:
    parked = queue_url(aws.sqs, aws.stack.template.get_att("ParkedQueue", "Arn"))
    faults.status = 503
    try:
        key = aws.upload(_key(aws, "unlucky.png"), images.xray_png(128, seed=5))
        failed = aws.wait_for_results([key], statuses=("failed",), timeout_s=60)
        assert failed[key]["status"] == "failed"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _visible(aws, parked):
            time.sleep(0.3)
    finally:
        faults.status = None
    assert _visible(aws, parked) == 1
    assert faults.failed_calls >= 5
    assert [n["status"] for n in aws.drain_notifications()] == ["failed"]  # once, though two functions saw it fail
    assert redrive(aws.sqs, parked, aws.stack.template.ref("IngestQueue")) == 1
    assert aws.wait_for_results([key], statuses=("classified",), timeout_s=60)[key]["status"] == "classified"
    assert [n["status"] for n in aws.drain_notifications()] == ["classified"]
    assert len(aws.results_for(key)) == 1


def _visible(aws: Harness, queue: str) -> int:
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_sagemaker_control_plane_has_the_endpoint(stack: LocalDeployment) -> None:
    name = stack.template.get_att("XrayEndpoint", "EndpointName")
    assert stack.client("sagemaker").describe_endpoint(EndpointName=name)["EndpointName"] == name
    assert stack.lambda_environment()["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == stack.endpoint.url


def test_outputs_file_has_the_stack_outputs_and_local_extras(stack: LocalDeployment, tmp_path: Path) -> None:
    outputs = json.loads(stack.write_outputs(tmp_path / "outputs.json").read_text())
    declared = stack.template.doc["Outputs"]
    unconditional = {k for k, v in declared.items() if "Condition" not in v}
    assert unconditional <= set(outputs)
    assert not {"ClientUrl", "ClientBucketName"} & set(outputs)  # the hosted site is AWS only (HostClient)
    assert {"AwsEndpointUrl", "DemoUsername", "DemoPassword"} <= set(outputs)
    assert outputs["UploadBucketName"] == stack.template.ref("UploadBucket")


def test_a_dicom_dropped_into_the_bucket_is_classified_and_no_phi_leaves(aws: Harness) -> None:
    pixels = np.asarray(Image.open(SAMPLES / "covid-2.png").convert("L"))
    refused = dicoms.dicom(pixels, ViewPosition="LL")
    keys = [aws.upload(_key(aws, "study.dcm"), dicoms.dicom(pixels)), aws.upload(_key(aws, "lateral"), refused)]
    results = aws.wait_for_results(keys)
    assert results[keys[0]]["status"] == "classified"
    assert (results[keys[1]]["status"], results[keys[1]]["reason"]) == ("rejected", "not_frontal")
    published = json.dumps(aws.drain_notifications()) + json.dumps([dict(r) for r in results.values()], default=str)
    for value in ("Smith", "MRN-00123456", "19511203", "ACC-98765", "Example Hospital"):
        assert value not in published


def test_a_photograph_and_a_turned_xray_are_rejected_by_the_lung_fields(aws: Harness) -> None:
    sample = (SAMPLES / "covid-2.png").read_bytes()
    uploads = {"photo.jpg": images.photograph(seed=3), "sideways.png": images.turned(sample, 90), "ok.png": sample}
    keys = {aws.upload(_key(aws, name), data): name for name, data in uploads.items()}
    results = {keys[k]: r for k, r in aws.wait_for_results(list(keys)).items()}
    assert (results["photo.jpg"]["status"], results["photo.jpg"]["reason"]) == ("rejected", "no_lung_fields")
    assert (results["sideways.png"]["status"], results["sideways.png"]["reason"]) == ("rejected", "not_upright")
    assert results["ok.png"]["status"] == "classified"
    assert float(results["ok.png"]["gate"]["score"]) <= float(results["ok.png"]["gate"]["threshold"])
