"""Every AWS call a function's code makes, recorded from botocore's own events, as the IAM request it is.

moto enforces no IAM, so a call the deployed role does not allow only fails on AWS (the API's preview
and heatmap writes did: `POST /classify?store=true` was AccessDenied there). ``CallRecorder`` hooks the
default boto3 session's event system, which every client the functions create copies at creation:

- ``provide-client-params``: each API call and each presigned URL, with the parameters the code gave;
- ``before-sign.s3.PutObject`` with a presigned-post policy: each presigned POST form, whose bucket and
  key are in the policy's conditions (the upload is made later, by the browser, with the signer's
  role, so the role must allow that ``PutObject``).

``iam_request`` maps a call to the IAM action and the resource ARN AWS authorizes it against (the
Service Authorization Reference's tables for S3, DynamoDB, SNS, SQS, Secrets Manager and SageMaker).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3

# botocore's service ids -> the IAM prefix of their actions.
IAM_PREFIX = {
    "s3": "s3",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "sqs": "sqs",
    "secrets-manager": "secretsmanager",
    "sagemaker-runtime": "sagemaker",
}
# S3 operations whose IAM action has another name.
S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjectVersions": "ListBucketVersions"}


@dataclass(frozen=True)
class Call:
    function: str
    service: str
    operation: str
    params: dict[str, Any]


@dataclass(frozen=True)
class IamRequest:
    action: str
    resource: str


class CallRecorder:
    """Records, while ``recording(function)`` is open, the calls made by clients created after ``install``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._function: str | None = None
        self._lock = threading.Lock()
        self._events = boto3._get_default_session().events

    def install(self) -> None:
        self._events.register("provide-client-params", self._on_params, unique_id="iam-call-recorder")
        self._events.register("before-sign.s3.PutObject", self._on_post, unique_id="iam-post-recorder")

    def uninstall(self) -> None:
        self._events.unregister("provide-client-params", unique_id="iam-call-recorder")
        self._events.unregister("before-sign.s3.PutObject", unique_id="iam-post-recorder")

    @contextmanager
    def recording(self, function: str) -> Iterator[None]:
        self._function = function
        try:
            yield
        finally:
            self._function = None

    def _add(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if self._function is not None:
            with self._lock:
                self.calls.append(Call(self._function, service, operation, dict(params)))

    def _on_params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_id.hyphenize()
        if context.get("is_presign_request") and model.name == "CreateBucket":
            return  # the stand-in operation of a presigned POST: recorded from its policy instead
        self._add(service, model.name, params)

    def _on_post(self, request: Any, **_: Any) -> None:
        policy = request.context.get("s3-presign-post-policy")
        if policy is None:
            return  # an ordinary PutObject: already recorded from its parameters
        fields: dict[str, str] = {}
        for condition in policy["conditions"]:
            if isinstance(condition, dict):
                fields.update(condition)
        self._add("s3", "PutObject", {"Bucket": fields["bucket"], "Key": fields["key"]})


def _queue_arn(url: str, region: str) -> str:
    account, name = urlparse(url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def iam_request(call: Call, region: str, account: str) -> IamRequest:
    """The action and resource ARN that AWS authorizes ``call`` against."""
    p, prefix = call.params, IAM_PREFIX[call.service]
    if call.service == "s3":
        operation = S3_ACTIONS.get(call.operation, call.operation)
        if operation == "GetObject" and p.get("VersionId"):
            operation = "GetObjectVersion"
        key = p.get("Key")
        return IamRequest(f"s3:{operation}", f"arn:aws:s3:::{p['Bucket']}" + (f"/{key}" if key else ""))
    if call.service == "dynamodb":
        table = f"arn:aws:dynamodb:{region}:{account}:table/{p['TableName']}"
        return IamRequest(
            f"dynamodb:{call.operation}", table + (f"/index/{p['IndexName']}" if "IndexName" in p else "")
        )
    if call.service == "sns":
        return IamRequest(f"sns:{call.operation}", p["TopicArn"])
    if call.service == "sqs":
        return IamRequest(f"sqs:{call.operation}", _queue_arn(p["QueueUrl"], region))
    if call.service == "secrets-manager":
        return IamRequest(f"secretsmanager:{call.operation}", p["SecretId"])
    if call.service == "sagemaker-runtime":
        return IamRequest(
            f"{prefix}:{call.operation}", f"arn:aws:sagemaker:{region}:{account}:endpoint/{p['EndpointName']}"
        )
    raise KeyError(f"no IAM mapping for {call.service}:{call.operation}")
