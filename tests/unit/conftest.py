"""Fixtures of the unit tests that run the Lambda handlers: the resources their environment names,
created in in-process moto and registered in the template, and the model endpoint's answers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local_stack.runner import FunctionRunner
from local_stack.template import Template
from model.core import contract
from model.serving.inference import handle_invocation
from model.serving.runtime import Predictor
from tests.conftest import ROOT, load_event

ENDPOINT = "xray-endpoint"


@dataclass
class World:
    template: Template
    bucket: str
    table: Any
    parked_queue: str

    def run(self, function: str, event: dict[str, Any], **environment: str) -> Any:
        """``event`` through a fresh container of ``function``; ``environment`` overrides the template's."""
        extra = {"POWERTOOLS_METRICS_DISABLED": "true", **environment}
        return FunctionRunner(self.template, function, extra).invoke(event)

    def put(self, key: str, data: bytes) -> str:
        return str(boto3.client("s3").put_object(Bucket=self.bucket, Key=key, Body=data)["VersionId"])

    def stored(self) -> list[dict[str, Any]]:
        return list(self.table.scan()["Items"])


@pytest.fixture
def world(results_table: Any) -> Iterator[World]:
    """The resources the functions' environment names, created in moto and registered in the template."""
    template = Template(parameters={"AllowedOrigin": "https://client.example.org"})
    event_bucket = json.loads(load_event("sqs-s3-put.json")["Records"][0]["body"])["Records"][0]["s3"]["bucket"]
    bucket = event_bucket["name"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic = boto3.client("sns").create_topic(Name="results")["TopicArn"]
    parked = boto3.client("sqs").create_queue(QueueName="parked")["QueueUrl"]
    secret = boto3.client("secretsmanager").create_secret(Name="page-token", SecretString="k" * 32)["ARN"]
    template.register("ResultsTable", results_table.name)
    template.register("ResultsTopic", topic)
    template.register("UploadBucket", bucket)
    template.register("ParkedQueue", parked)
    template.register("PageTokenSecret", secret)
    template.register("XrayEndpoint", ENDPOINT, EndpointName=ENDPOINT)
    saved = dict(os.environ)  # the runner sets the function's environment in the process, as Lambda would
    try:
        yield World(template, bucket, results_table, parked)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def endpoint_answers(tiny_model_dir: Path, image: bytes, explain: bool = False) -> contract.Response:
    """Queue, in moto's SageMaker runtime, the answer the real server gives for ``image``."""
    request = json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}], "explain": explain}).encode()
    status, body = handle_invocation(Predictor.load(tiny_model_dir, "onnx"), request, contract.JSON_TYPE)
    assert status == 200
    results = {"results": [{"Body": body.decode(), "ContentType": contract.JSON_TYPE}]}
    requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results", json=results, timeout=5)
    answer: contract.Response = json.loads(body)
    return answer


def sqs_event_for(key: str, version: str, name: str = "sqs-s3-put.json") -> dict[str, Any]:
    """The sample event, naming the object this test put (its key and version) instead of the sample's."""
    event = load_event(name)
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["object"].update({"key": key.replace(" ", "+"), "versionId": version})
    event["Records"][0]["body"] = json.dumps(body)
    return event


def run_probe(*args: str, timeout_s: int = 300) -> str:
    """``python -m tests.unit.functions.decode_memory_probe ARGS`` in a fresh process with the functions' malloc
    setting (it matters to their peak: see template.yaml); its standard output."""
    malloc = Template().doc["Globals"]["Function"]["Environment"]["Variables"]["MALLOC_MMAP_THRESHOLD_"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.functions.decode_memory_probe", *args],
        cwd=ROOT,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(malloc)},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
