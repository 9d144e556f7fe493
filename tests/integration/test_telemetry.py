"""No object key reaches a trace or a log line, even through a read timeout; every API call is audited.

Both functions run in a fresh process with Lambda's X-Ray environment (tracing on, botocore patched),
against the local stack, on objects whose keys name a patient. The X-Ray documents are captured by an
in-memory emitter and the logs from the process's output.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from local_stack.harness import Harness
from local_stack.stack import LocalDeployment
from tests import images
from tests.conftest import ROOT, load_event

pytestmark = pytest.mark.integration
MARKER = "MRN-00123456"
SUB = "7d8e9f00-1111-4a2b-8c3d-4e5f6a7b8c9d"


def _sqs_record(bucket: str, key: str, size: int, etag: str, receive_count: int) -> dict[str, Any]:
    (record,) = copy.deepcopy(load_event("sqs-s3-put.json"))["Records"]
    body = json.loads(record["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = bucket
    body["Records"][0]["s3"]["object"] = {"key": key, "size": size, "eTag": etag, "sequencer": "0A"}
    record.update(body=json.dumps(body), messageId=str(uuid.uuid4()))
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return record


def _api_event(name: str, **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    event["requestContext"]["authorizer"]["claims"]["sub"] = SUB
    event.update(changes)
    return event


@pytest.fixture(scope="module")
def probe(stack: LocalDeployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    aws = Harness(stack)
    # Outside the upload prefix, so that only this probe, not the stack's own poller, processes them.
    keys = {
        name: f"probe/ward3/{MARKER}_smith_john_{name}_{uuid.uuid4().hex[:6]}.png"
        for name in ("good", "timeout", "missing")
    }
    records = []
    for name, key in keys.items():
        data = images.xray_png(200, seed=len(name))
        etag = "e" if name == "missing" else aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=data)["ETag"].strip('"')
        records.append(_sqs_record(aws.bucket, key, len(data), etag, receive_count=5 if name == "timeout" else 1))
    shared_key = keys["good"].replace("probe/", aws.prefix)
    image = base64.b64encode(images.xray_png(256, seed=5)).decode()
    spec = {
        "batch_event": {"Records": records},
        "timeout_keys": [keys["timeout"].replace(" ", "%20")],
        "api_events": [
            _api_event("api-classify.json", body=image, queryStringParameters={"store": "true"}),
            _api_event(
                "api-list-results.json",
                queryStringParameters={"key": shared_key},
                multiValueQueryStringParameters={"key": [shared_key]},
            ),
            _api_event("api-get-result.json"),
            _api_event("api-classify.json", body="☢ 胸部X線", isBase64Encoded=False),
        ],
    }
    folder = tmp_path_factory.mktemp("telemetry")
    (folder / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        **stack.runner("ApiFunction").environment,
        **stack.runner("ClassifyBatchFunction").environment,
        # What Lambda sets, which puts the X-Ray SDK in its Lambda mode and turns Powertools' Tracer on.
        "AWS_LAMBDA_FUNCTION_NAME": "probe",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.telemetry_probe",
            str(folder / "spec.json"),
            str(folder / "out.json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((folder / "out.json").read_text())
    return {**out, "logs": done.stdout + done.stderr, "keys": keys}


def test_the_batch_ran_with_tracing_on(probe: dict[str, Any]) -> None:
    calls = [json.loads(d) for d in probe["documents"]]
    operations = {c.get("aws", {}).get("operation") for c in calls} | {
        s.get("aws", {}).get("operation") for c in calls for s in c.get("subsegments", [])
    }
    assert "GetObject" in operations
    assert probe["answers"]["batch"]["batchItemFailures"]  # the timed-out object is retried


def test_no_object_key_is_in_any_trace_document(probe: dict[str, Any]) -> None:
    assert probe["documents"]
    for document in probe["documents"]:
        assert MARKER not in document


def test_no_object_key_is_in_any_log_line_even_after_a_read_timeout(
    stack: LocalDeployment, probe: dict[str, Any]
) -> None:
    (failed,) = stack.harness.results_for(probe["keys"]["timeout"])
    assert (failed["status"], failed["reason"]) == ("failed", "TransientError")  # the timeout did happen
    assert probe["logs"].count('"audit":{') == 4
    assert MARKER not in probe["logs"]


def test_every_api_call_logs_one_audit_line(probe: dict[str, Any]) -> None:
    audits = [json.loads(line)["audit"] for line in probe["logs"].splitlines() if '"audit"' in line]
    assert [(a["route"], a["status"]) for a in audits] == [
        ("POST /classify", 200),
        ("GET /results", 200),
        ("GET /results/{result_id}", 404),
        ("POST /classify", 400),
    ]
    assert {a["sub"] for a in audits} == {SUB}
    assert audits[0]["result_id"] == json.loads(probe["answers"]["api"][0]["body"])["result_id"]
    assert audits[2]["result_id"] == "0123456789abcdef0123456789abcdef"
    assert audits[3]["outcome"] == "BadRequestError"


def test_the_text_body_is_a_400_not_a_crash(probe: dict[str, Any]) -> None:
    assert probe["answers"]["api"][3]["statusCode"] == 400


def test_a_caller_outside_the_groups_does_not_find_a_shared_drop_by_key(probe: dict[str, Any]) -> None:
    listing = probe["answers"]["api"][1]
    assert listing["statusCode"] == 200
    assert json.loads(listing["body"])["items"] == []
