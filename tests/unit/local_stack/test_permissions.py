"""What moto cannot check: the IAM that template.yaml deploys allows what the functions do, and no more.

The KMS actions each function needs are *derived* (tests/template_iam.py) from the encrypted
resources its policies and event sources touch, after the real SAM transform; a change that drops
one fails here instead of on AWS.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local_stack.template import Template
from tests.template_iam import missing_kms, references, required_kms, role_grants, star_writes, translate

PARAMETERS = {"AllowedOrigin": "https://xray.example.org"}


@pytest.fixture(scope="module")
def sam_doc() -> dict[str, Any]:
    return Template().doc


@pytest.fixture
def deployed(sam_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return translate(sam_doc, PARAMETERS)


def _translate(doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return translate(doc, PARAMETERS)


def _without_kms_statement(doc: dict[str, Any], function: str, *policies: Any) -> dict[str, Any]:
    """A copy of the SAM template whose function keeps every statement but its KMS one, plus ``policies``."""
    changed = copy.deepcopy(doc)
    props = changed["Resources"][function]["Properties"]
    for policy in props["Policies"]:
        if "Statement" in policy:
            policy["Statement"] = [s for s in policy["Statement"] if not str(s["Action"]).count("kms:")]
    props["Policies"] += list(policies)
    return changed


def test_every_kms_action_a_function_needs_is_granted(deployed: dict[str, Any]) -> None:
    assert missing_kms(deployed) == []


def test_every_kms_action_the_report_push_needs_is_granted(
    sam_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    pushed = translate(sam_doc, {**PARAMETERS, "PacsDestinationHost": "pacs.hospital.example"})
    assert missing_kms(pushed) == []
    push = required_kms(pushed, "ReportPushFunction")
    assert push[("DataKey", "kms:Decrypt")] == {
        "s3:GetObject on UploadBucket",
        "sqs:ReceiveMessage on ReportOutboxQueue",
    }


def test_the_needs_are_derived_from_the_encrypted_resources_each_function_touches(deployed: dict[str, Any]) -> None:
    batch = required_kms(deployed, "ClassifyBatchFunction")
    assert batch[("DataKey", "kms:Decrypt")] >= {"s3:GetObject on UploadBucket", "sqs:ReceiveMessage on IngestQueue"}
    assert batch[("DataKey", "kms:GenerateDataKey")] == {"sns:Publish on ResultsTopic", "s3:PutObject on UploadBucket"}
    api = required_kms(deployed, "ApiFunction")
    assert api[("DataKey", "kms:GenerateDataKey")] == {"s3:PutObject on UploadBucket", "sns:Publish on ResultsTopic"}
    assert {"secretsmanager:GetSecretValue on PageTokenSecret", "s3:GetObject on UploadBucket"} <= api[
        ("DataKey", "kms:Decrypt")
    ]


def test_the_sam_kms_encrypt_and_decrypt_templates_would_break_uploads_and_notifications(
    sam_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = {"KeyId": {"Ref": "DataKey"}}
    doc = _without_kms_statement(sam_doc, "ApiFunction", {"KMSDecryptPolicy": key}, {"KMSEncryptPolicy": key})
    assert missing_kms(_translate(doc, monkeypatch)) == [
        "ApiFunction: kms:GenerateDataKey on DataKey (for s3:PutObject on UploadBucket, sns:Publish on ResultsTopic)"
    ]


def test_dropping_decrypt_from_the_batch_function_is_caught(
    sam_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = {
        "Statement": [
            {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": {"Fn::GetAtt": ["DataKey", "Arn"]}}
        ]
    }
    missing = missing_kms(_translate(_without_kms_statement(sam_doc, "ClassifyBatchFunction", grant), monkeypatch))
    assert len(missing) == 1
    assert missing[0].startswith("ClassifyBatchFunction: kms:Decrypt on DataKey")
    assert "sqs:ReceiveMessage on IngestQueue" in missing[0]


def test_no_role_grants_a_write_action_on_every_resource(deployed: dict[str, Any]) -> None:
    assert star_writes(deployed) == []


def test_a_write_action_on_every_resource_is_caught(sam_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    grant = {"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}
    doc = copy.deepcopy(sam_doc)
    doc["Resources"]["ApiFunction"]["Properties"]["Policies"].append(grant)
    assert star_writes(_translate(doc, monkeypatch)) == ["ApiFunctionRole: s3:PutObject"]


def test_functions_use_no_crud_policy_template(sam_doc: dict[str, Any]) -> None:
    for name in ("ClassifyBatchFunction", "ApiFunction"):
        templates = {k for policy in sam_doc["Resources"][name]["Properties"]["Policies"] for k in policy}
        assert not templates & {"DynamoDBCrudPolicy", "S3CrudPolicy", "KMSEncryptPolicy", "KMSDecryptPolicy"}


def test_the_sagemaker_role_pulls_images_only_from_the_inference_images_registry(deployed: dict[str, Any]) -> None:
    grants = role_grants(deployed, "SageMakerExecutionRole")
    (pull,) = [g for g in grants if g.allows("ecr:BatchGetImage")]
    assert references(list(pull.resources)) == {"InferenceImage"}


def test_the_key_policy_lets_s3_send_to_the_encrypted_queue(sam_doc: dict[str, Any]) -> None:
    statements = sam_doc["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    (s3,) = [s for s in statements if s["Principal"] == {"Service": "s3.amazonaws.com"}]
    assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(s3["Action"])


def test_the_report_push_in_a_vpc_may_attach_its_network_interfaces(
    sam_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    vpc = {"PacsDestinationHost": "pacs.hospital.example", "PacsSubnetIds": "subnet-0a1b2c3d"}
    deployed = translate(sam_doc, {**PARAMETERS, **vpc, "PacsSecurityGroupIds": "sg-0a1b2c3d"})
    role = deployed["Resources"]["ReportPushFunctionRole"]["Properties"]
    assert any(str(arn).endswith("service-role/AWSLambdaVPCAccessExecutionRole") for arn in role["ManagedPolicyArns"])
    assert deployed["Resources"]["ReportPushFunction"]["Properties"]["VpcConfig"]["Fn::If"][0] == "PushReportsFromVpc"
