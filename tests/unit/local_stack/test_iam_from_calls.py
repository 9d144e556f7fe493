"""IAM checked against what the code calls: every AWS call each function's real code paths make (the
handlers driven with the sample events, in-process moto, botocore's events recording each call:
tests/aws_calls.py) is allowed by that function's role after the real SAM transform, and the role
allows nothing the code never calls, beyond the reasoned list below.

moto enforces no IAM: before this test, the API role could not write the preview and heatmap that
`POST /classify?store=true` stores, and only AWS said so.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from local_stack.template import Template
from tests import images
from tests.aws_calls import Call, CallRecorder, IamRequest, iam_request
from tests.conftest import load_event
from tests.template_iam import Grant, function_roles, role_grants, translate
from tests.unit.conftest import World, endpoint_answers, sqs_event_for

REGION, ACCOUNT = "us-east-1", "123456789012"
FUNCTIONS = ("ClassifyBatchFunction", "DeadLetterFunction", "ApiFunction")
# Granted and never called by the functions' code, each for its reason.
NOT_CALLED_BY_CODE = {
    "kms:Decrypt": "S3, SNS, SQS and Secrets Manager call KMS on the function's behalf; "
    "tests/unit/local_stack/test_permissions.py derives these from the encrypted resources each function touches",
    "kms:GenerateDataKey": "as kms:Decrypt",
    "s3:ListBucket": "without it S3 answers a GetObject of a deleted key with 403, not 404, and the object "
    "would be retried until `failed` instead of recorded `object_missing`",
}


def _arns(world: World) -> Template:
    """The deployed template with ARNs and attributes for every resource the world created."""
    deployed = Template(parameters=world.template.parameters, context=world.template.context)
    deployed.doc = translate(world.template.doc, world.template.parameters)
    deployed.resources = deployed.doc["Resources"]
    names = {k: v["Ref"] for k, v in world.template.physical.items()}
    deployed.register("UploadBucket", names["UploadBucket"], Arn=f"arn:aws:s3:::{names['UploadBucket']}")
    deployed.register(
        "ResultsTable", names["ResultsTable"], Arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{names['ResultsTable']}"
    )
    topic = names["ResultsTopic"]
    deployed.register("ResultsTopic", topic, TopicName=topic.rsplit(":", 1)[1])
    parked = names["ParkedQueue"].rstrip("/").rsplit("/", 1)[1]
    deployed.register("ParkedQueue", names["ParkedQueue"], Arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{parked}")
    deployed.register("PageTokenSecret", names["PageTokenSecret"])
    deployed.register("XrayEndpoint", names["XrayEndpoint"], EndpointName=names["XrayEndpoint"])
    deployed.register("DataKey", "key-id", Arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/key-id")
    return deployed


def _resources(deployed: Template, grant: Grant) -> list[str]:
    resolved = deployed.resolve(list(grant.resources))
    return [str(r) for r in resolved]


def allowed(deployed: Template, grants: list[Grant], request: IamRequest) -> bool:
    return any(
        grant.allows(request.action)
        and any(fnmatch.fnmatchcase(request.resource, r) for r in _resources(deployed, grant))
        for grant in grants
    )


def _api_event(method: str, path: str, body: bytes | None = None, **query: str) -> dict[str, Any]:
    event = load_event("api-classify.json")  # the sample's caller, headers and request context
    event.update(
        httpMethod=method,
        path=path,
        resource=path if "results/" not in path else "/results/{result_id}",
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} or None,
        pathParameters={"result_id": path.rsplit("/", 1)[1]} if "results/" in path else None,
        body=base64.b64encode(body).decode() if body is not None else None,
        isBase64Encoded=body is not None,
    )
    if body is None:
        event["headers"] = {**event["headers"], "Content-Type": "application/json"}
    return event


def _exercise(world: World, recorder: CallRecorder, tiny_model_dir: Path) -> None:
    """Every code path of every function that calls AWS, with the sample events."""

    def run(function: str, event: dict[str, Any]) -> Any:
        with recorder.recording(function):
            return world.run(function, event)

    image = images.xray_png(256, seed=5)
    version = world.put("uploads/ward 3/chest.png", image)
    for _ in range(2):  # the second delivery finds the result stored: the duplicate path reads it
        endpoint_answers(tiny_model_dir, image, explain=True)
        run("ClassifyBatchFunction", sqs_event_for("uploads/ward 3/chest.png", version))
    endpoint_answers(tiny_model_dir, image, explain=True)
    unversioned = sqs_event_for("uploads/ward 3/chest.png", version)
    body = json.loads(unversioned["Records"][0]["body"])
    del body["Records"][0]["s3"]["object"]["versionId"]  # what a bucket without versioning sends
    unversioned["Records"][0]["body"] = json.dumps(body)
    run("ClassifyBatchFunction", unversioned)

    for _ in range(2):  # a redelivered dead letter finds its `failed` result
        run("DeadLetterFunction", sqs_event_for("uploads/lost.png", "v-lost"))

    endpoint_answers(tiny_model_dir, image, explain=True)
    stored = run("ApiFunction", _api_event("POST", "/classify", image, store="true"))
    result_id = json.loads(stored["body"]).get("result_id", "missing")
    run("ApiFunction", _api_event("GET", f"/results/{result_id}"))
    run("ApiFunction", _api_event("GET", "/results"))
    run("ApiFunction", _api_event("GET", "/results", key="uploads/x.png"))
    # A page token is checked with the secret, read at the first listing that needs one.
    run("ApiFunction", _api_event("GET", "/results", next_token="a-token-from-elsewhere"))
    upload = _api_event("POST", "/uploads")
    upload.update(body=json.dumps({"content_type": "image/png"}), isBase64Encoded=False)
    run("ApiFunction", upload)


@pytest.fixture
def exercised(world: World, tiny_model_dir: Path) -> tuple[Template, list[Call]]:
    recorder = CallRecorder()
    recorder.install()
    try:
        _exercise(world, recorder, tiny_model_dir)
    finally:
        recorder.uninstall()
    return _arns(world), recorder.calls


def _requests(calls: list[Call], function: str) -> set[IamRequest]:
    return {iam_request(c, REGION, ACCOUNT) for c in calls if c.function == function}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_call_the_code_makes_is_allowed_by_its_role(
    exercised: tuple[Template, list[Call]], function: str
) -> None:
    deployed, calls = exercised
    grants = role_grants(deployed.doc, function_roles(deployed.doc)[function])
    refused = sorted(f"{r.action} {r.resource}" for r in _requests(calls, function) if not allowed(deployed, grants, r))
    assert refused == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_role_allows_nothing_the_code_never_calls(exercised: tuple[Template, list[Call]], function: str) -> None:
    deployed, calls = exercised
    made = _requests(calls, function)
    unused = []
    for grant in role_grants(deployed.doc, function_roles(deployed.doc)[function]):
        for action in grant.actions:
            if action in NOT_CALLED_BY_CODE:
                continue
            for resource in _resources(deployed, grant):
                if not any(r.action == action and fnmatch.fnmatchcase(r.resource, resource) for r in made):
                    unused.append(f"{action} {resource}")
    assert unused == []


def test_the_recorder_sees_presigned_forms_and_urls_as_the_calls_they_sign(
    exercised: tuple[Template, list[Call]],
) -> None:
    bucket = f"arn:aws:s3:::{exercised[0].ref('UploadBucket')}"
    api = _requests(exercised[1], "ApiFunction")
    presigned_post = [r for r in api if r.action == "s3:PutObject" and r.resource.startswith(f"{bucket}/uploads/")]
    presigned_get = [r for r in api if r.action == "s3:GetObject" and r.resource.startswith(f"{bucket}/explanations/")]
    assert (len(presigned_post), len(presigned_get)) == (1, 2)
