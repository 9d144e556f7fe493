"""Read the IAM that template.yaml deploys, the way AWS will: after the SAM transform.

moto enforces neither IAM nor KMS, so a missing permission would only show on AWS. These helpers let a
unit test derive, from the template alone, what each function is allowed to do, which encrypted
resources that touches, and so which KMS actions it needs on their keys.

- ``translate`` runs samtranslator (the same transform ``sam deploy`` asks CloudFormation for), so SAM
  policy templates are expanded from samtranslator's own table and event sources add their policies.
- ``KMS_NEEDS`` is the one table of facts: which calls on which encrypted resource need which KMS
  action (from the KMS sections of the S3, SNS, SQS and Secrets Manager developer guides).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from samtranslator.translator.transform import transform

# (resource type, API action) -> KMS actions the caller needs on that resource's key.
KMS_NEEDS: dict[tuple[str, str], frozenset[str]] = {
    ("AWS::S3::Bucket", "s3:GetObject"): frozenset({"kms:Decrypt"}),
    ("AWS::S3::Bucket", "s3:GetObjectVersion"): frozenset({"kms:Decrypt"}),
    ("AWS::S3::Bucket", "s3:PutObject"): frozenset({"kms:GenerateDataKey"}),
    ("AWS::SNS::Topic", "sns:Publish"): frozenset({"kms:GenerateDataKey", "kms:Decrypt"}),
    ("AWS::SQS::Queue", "sqs:ReceiveMessage"): frozenset({"kms:Decrypt"}),
    ("AWS::SQS::Queue", "sqs:SendMessage"): frozenset({"kms:GenerateDataKey", "kms:Decrypt"}),
    ("AWS::SecretsManager::Secret", "secretsmanager:GetSecretValue"): frozenset({"kms:Decrypt"}),
}
# Actions AWS offers on no narrower resource than "*" (each with the reason it is acceptable).
STAR_ONLY_ACTIONS = {
    "ecr:GetAuthorizationToken": "a registry login token; pulling an image is scoped separately",
    "cloudwatch:PutMetricData": "scoped by the cloudwatch:namespace condition instead",
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
}
_READ_VERBS = ("Get", "List", "Describe", "BatchGet", "Query", "Scan", "Head")
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def translate(doc: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of ``doc`` (code locations stubbed)."""
    doc = json.loads(json.dumps(doc))
    for resource in doc["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://bucket/layer.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return transform(doc, parameters, NoManagedPolicies())  # type: ignore[no-any-return]


def references(value: Any) -> set[str]:
    """Logical ids (resources or parameters) that ``value`` refers to through Ref, GetAtt and Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                found.add(str(arg))
            elif key == "Fn::GetAtt":
                found.add(str(arg[0] if isinstance(arg, list) else arg.split(".")[0]))
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                found |= {n for n in _SUB_NAME.findall(text) if n not in variables}
                found |= references(variables)
            else:
                found |= references(arg)
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    resources: tuple[Any, ...]
    condition: dict[str, Any] | None

    def allows(self, action: str) -> bool:
        return any(fnmatch.fnmatch(action.lower(), pattern.lower()) for pattern in self.actions)

    def touches(self, logical_id: str) -> bool:
        return any(r == "*" or logical_id in references(r) for r in self.resources)

    @property
    def star(self) -> bool:
        return "*" in self.resources


def role_grants(template: dict[str, Any], role_id: str) -> list[Grant]:
    grants = []
    for policy in template["Resources"][role_id]["Properties"].get("Policies", []):
        for statement in _as_list(policy["PolicyDocument"]["Statement"]):
            if statement.get("Effect") == "Allow":
                grants.append(
                    Grant(
                        tuple(map(str, _as_list(statement["Action"]))),
                        tuple(_as_list(statement["Resource"])),
                        statement.get("Condition"),
                    )
                )
    return grants


def function_roles(template: dict[str, Any]) -> dict[str, str]:
    """Lambda function logical id -> its execution role's logical id."""
    return {
        name: references(resource["Properties"]["Role"]).pop()
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def encryption_keys(resource: dict[str, Any]) -> set[str]:
    props = resource.get("Properties", {})
    kind = resource["Type"]
    if kind == "AWS::S3::Bucket":
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        return references([r.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID") for r in rules])
    if kind in ("AWS::SNS::Topic", "AWS::SQS::Queue"):
        return references(props.get("KmsMasterKeyId"))
    if kind == "AWS::SecretsManager::Secret":
        return references(props.get("KmsKeyId"))
    return set()


def _uses(template: dict[str, Any], function: str, grants: list[Grant]) -> Iterator[tuple[str, str]]:
    """(API action, resource logical id) pairs the function may call, from its grants and event sources."""
    resources = template["Resources"]
    for grant in grants:
        for resource_id in {r for r in references(list(grant.resources)) if r in resources}:
            for resource_type, action in KMS_NEEDS:
                if resources[resource_id]["Type"] == resource_type and grant.allows(action):
                    yield action, resource_id
    for mapping in resources.values():
        if mapping["Type"] == "AWS::Lambda::EventSourceMapping" and function in references(
            mapping["Properties"]["FunctionName"]
        ):
            for source in references(mapping["Properties"]["EventSourceArn"]):
                if resources.get(source, {}).get("Type") == "AWS::SQS::Queue":
                    yield "sqs:ReceiveMessage", source


def required_kms(template: dict[str, Any], function: str) -> dict[tuple[str, str], set[str]]:
    """(KMS key logical id, KMS action) -> the 'action on resource' uses that need it."""
    grants = role_grants(template, function_roles(template)[function])
    needs: dict[tuple[str, str], set[str]] = {}
    for action, resource_id in _uses(template, function, grants):
        resource = template["Resources"][resource_id]
        for key in encryption_keys(resource):
            for kms_action in KMS_NEEDS[(resource["Type"], action)]:
                needs.setdefault((key, kms_action), set()).add(f"{action} on {resource_id}")
    return needs


def missing_kms(template: dict[str, Any]) -> list[str]:
    """Every KMS action a function needs on a key and is not granted, with the use that needs it."""
    missing = []
    for function, role in function_roles(template).items():
        grants = role_grants(template, role)
        for (key, kms_action), uses in sorted(required_kms(template, function).items()):
            if not any(g.allows(kms_action) and g.touches(key) for g in grants):
                missing.append(f"{function}: {kms_action} on {key} (for {', '.join(sorted(uses))})")
    return missing


def star_writes(template: dict[str, Any]) -> list[str]:
    """Write actions granted on Resource "*" by any role of the template."""
    found = []
    for role_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for grant in role_grants(template, role_id):
            if not grant.star:
                continue
            for action in grant.actions:
                verb = action.split(":", 1)[1]
                if action in STAR_ONLY_ACTIONS or (verb.startswith(_READ_VERBS) and "*" not in verb):
                    continue
                found.append(f"{role_id}: {action}")
    return found
