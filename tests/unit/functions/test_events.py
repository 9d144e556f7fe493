"""The sample events have the shape `sam local generate-event` gives, and only the values changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_event

SAM = Path(sys.executable).with_name("sam")
GENERATE = {
    "s3-put.json": ["s3", "put"],
    "sqs-s3-put.json": ["sqs", "receive-message"],
    "sqs-report-outbox.json": ["sqs", "receive-message"],
    "s3-test-event.json": ["sqs", "receive-message"],
    "api-classify.json": ["apigateway", "aws-proxy"],
    "api-get-result.json": ["apigateway", "aws-proxy"],
    "api-list-results.json": ["apigateway", "aws-proxy"],
    "api-create-upload.json": ["apigateway", "aws-proxy"],
}


def _generate(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(SAM), "local", "generate-event", *args],
        capture_output=True,
        text=True,
        check=True,
        env={"SAM_CLI_TELEMETRY": "0", "PATH": str(SAM.parent) + ":/usr/bin:/bin", "HOME": "/tmp"},
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# Maps whose keys depend on the request (or that API Gateway sends as null when empty): present, any content.
FREE_FORM = {
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "messageAttributes",
}


def _missing_keys(reference: Any, event: Any, path: str = "") -> list[str]:
    if path.rsplit("/", 1)[-1] in FREE_FORM:
        return []
    if isinstance(reference, dict):
        if not isinstance(event, dict):
            return [path or "/"]
        return [
            m
            for k, v in reference.items()
            for m in ([f"{path}/{k}"] if k not in event else _missing_keys(v, event[k], f"{path}/{k}"))
        ]
    if isinstance(reference, list) and reference:
        return [] if isinstance(event, list) and event and not _missing_keys(reference[0], event[0], path) else [path]
    return []


def test_every_event_file_is_checked() -> None:
    assert {p.name for p in (Path(__file__).resolve().parents[3] / "events").glob("*.json")} == set(GENERATE)


@pytest.mark.parametrize("name", sorted(GENERATE))
def test_event_has_the_generated_shape(name: str) -> None:
    reference = _generate(GENERATE[name])
    if name in {"api-get-result.json", "api-list-results.json"}:
        # generate-event fills these; ours are GET requests with query or path parameters.
        reference.pop("body", None)
    assert _missing_keys(reference, load_event(name)) == []


def test_sqs_wrapped_event_carries_the_s3_event() -> None:
    body = json.loads(load_event("sqs-s3-put.json")["Records"][0]["body"])
    assert body == load_event("s3-put.json")


def test_keys_in_s3_events_are_url_encoded_as_s3_sends_them() -> None:
    assert load_event("s3-put.json")["Records"][0]["s3"]["object"]["key"] == "uploads/chest+x-ray%2B1.png"
