"""Structured Reports pushed to the PACS: what is sent, what counts as stored, and what comes back."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from functions.common.config import PushSettings
from functions.common.errors import ObjectMissingError, ReportPushError
from functions.common.report_push import CStoreSender, ReportPusher, announced_reports
from functions.common.structured_report import structured_report
from local_stack.runner import FunctionRunner
from local_stack.stack import pacs_parameters
from local_stack.template import Template
from tests import dicoms
from tests.conftest import StoreScp, load_event

PREFIX = "explanations/"
RESULT_ID = "0123456789abcdef0123456789abcdef"
RESULT: dict[str, Any] = {
    "result_id": RESULT_ID,
    "status": "rejected",
    "reason": "not_frontal",
    "model_version": "resnet18-multiclass-1",
}


@pytest.fixture
def report() -> bytes:
    data = dicoms.dicom(
        np.full((32, 32), 90, np.uint8), StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()
    )
    return structured_report(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True), RESULT)


def _settings(scp: StoreScp, called: str | None = None, port: int | None = None) -> PushSettings:
    return PushSettings(
        destination_ae_title=called or scp.ae_title,
        host="127.0.0.1",
        port=port or scp.port,
        calling_ae_title="XRAYCLASSIFY",
        explanation_prefix=PREFIX,
        timeout_s=5,
    )


def _body(*keys: str) -> str:
    body = json.loads(load_event("sqs-report-outbox.json")["Records"][0]["body"])
    record = body["Records"][0]
    body["Records"] = [{**record, "s3": {**record["s3"], "object": {**record["s3"]["object"], "key": k}}} for k in keys]
    return json.dumps(body)


def test_a_report_is_stored_in_the_pacs_as_the_same_instance(store_scp: StoreScp, report: bytes) -> None:
    CStoreSender(_settings(store_scp)).send(report)
    (stored,) = store_scp.received
    assert stored.SOPInstanceUID == pydicom.dcmread(io.BytesIO(report)).SOPInstanceUID


def test_a_failure_status_from_the_pacs_is_a_push_error(store_scp: StoreScp, report: bytes) -> None:
    store_scp.status = 0xA700  # out of resources
    with pytest.raises(ReportPushError, match="0xA700"):
        CStoreSender(_settings(store_scp)).send(report)


def test_a_warning_status_counts_as_stored(store_scp: StoreScp, report: bytes) -> None:
    store_scp.status = 0xB000  # coercion of data elements: stored
    CStoreSender(_settings(store_scp)).send(report)


def test_a_pacs_that_does_not_know_the_called_title_refuses_the_association(store_scp: StoreScp, report: bytes) -> None:
    with pytest.raises(ReportPushError, match="refused the association"):
        CStoreSender(_settings(store_scp, called="SOMEONEELSE")).send(report)


def test_a_pacs_that_is_not_listening_is_a_push_error(store_scp: StoreScp, report: bytes) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ReportPushError, match="could not be reached"):
        CStoreSender(_settings(store_scp, port=closed)).send(report)


def test_only_report_keys_under_the_prefix_are_announced() -> None:
    body = _body(
        f"{PREFIX}{RESULT_ID}/report.dcm", f"{PREFIX}{RESULT_ID}/heatmap.png", f"uploads/{RESULT_ID}/report.dcm"
    )
    assert announced_reports(body, PREFIX) == [RESULT_ID]
    assert announced_reports(load_event("s3-test-event.json")["Records"][0]["body"], PREFIX) == []


class Reports:
    def __init__(self, stored: dict[str, bytes]) -> None:
        self.stored = stored

    def report(self, result_id: str) -> bytes:
        if result_id not in self.stored:
            raise ObjectMissingError("gone")
        return self.stored[result_id]


class Sender:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[bytes] = []
        self.fail = fail

    def send(self, report: bytes) -> None:
        if self.fail:
            raise ReportPushError("the PACS could not be reached")
        self.sent.append(report)


def test_a_report_gone_before_its_push_is_skipped_not_retried() -> None:
    sender = Sender()
    assert ReportPusher(Reports({}), sender, PREFIX).push(_body(f"{PREFIX}{RESULT_ID}/report.dcm")) == []
    assert sender.sent == []


def test_a_refused_push_raises_so_that_the_message_comes_back() -> None:
    pusher = ReportPusher(Reports({RESULT_ID: b"sr"}), Sender(fail=True), PREFIX)
    with pytest.raises(ReportPushError):
        pusher.push(_body(f"{PREFIX}{RESULT_ID}/report.dcm"))


# -- the function, from the template, against moto and the stand-in PACS ------------------------------
@pytest.fixture
def push_function(aws_credentials: None, store_scp: StoreScp) -> Iterator[tuple[FunctionRunner, Any, str]]:
    from moto import mock_aws

    template = Template(parameters=pacs_parameters(f"{store_scp.ae_title}@127.0.0.1:{store_scp.port}"))
    saved = dict(os.environ)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="uploads")
        for name in ("ResultsTable", "ResultsTopic"):
            template.register(name, name.lower())
        template.register("UploadBucket", "uploads")
        template.register("XrayEndpoint", "endpoint", EndpointName="endpoint")
        runner = FunctionRunner(template, "ReportPushFunction", {"POWERTOOLS_METRICS_DISABLED": "true"})
        try:
            yield runner, s3, template.parameter("ExplanationPrefix")
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _outbox_event(key: str) -> dict[str, Any]:
    event = load_event("sqs-report-outbox.json")
    event["Records"][0]["body"] = _body(key)
    return event


def test_the_push_function_sends_the_announced_report(
    push_function: tuple[FunctionRunner, Any, str], store_scp: StoreScp, report: bytes
) -> None:
    runner, s3, prefix = push_function
    s3.put_object(Bucket="uploads", Key=f"{prefix}{RESULT_ID}/report.dcm", Body=report)
    assert runner.invoke(_outbox_event(f"{prefix}{RESULT_ID}/report.dcm")) == {"batchItemFailures": []}
    assert [d.SOPInstanceUID for d in store_scp.received] == [pydicom.dcmread(io.BytesIO(report)).SOPInstanceUID]


def test_the_push_function_returns_a_refused_push_as_a_batch_item_failure(
    push_function: tuple[FunctionRunner, Any, str], store_scp: StoreScp, report: bytes
) -> None:
    runner, s3, prefix = push_function
    s3.put_object(Bucket="uploads", Key=f"{prefix}{RESULT_ID}/report.dcm", Body=report)
    store_scp.status = 0xC000
    event = _outbox_event(f"{prefix}{RESULT_ID}/report.dcm")
    assert runner.invoke(event) == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_the_push_function_drops_a_malformed_message(push_function: tuple[FunctionRunner, Any, str]) -> None:
    runner, _, _ = push_function
    event = load_event("sqs-report-outbox.json")
    event["Records"][0]["body"] = "not json"
    assert runner.invoke(event) == {"batchItemFailures": []}
