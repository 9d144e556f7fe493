"""What scanners miss: the properties of template.yaml the pipeline's guarantees rest on."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from local_stack.template import Template

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def template() -> Template:
    return Template()


def _props(template: Template, logical_id: str) -> dict[str, Any]:
    return template.resources[logical_id]["Properties"]  # type: ignore[no-any-return]


def test_bucket_policy_denies_non_tls(template: Template) -> None:
    (statement,) = _props(template, "UploadBucketPolicy")["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(statement["Resource"]) == 2  # the bucket and every object in it


def test_visibility_timeout_is_at_least_six_times_the_function_timeout(template: Template) -> None:
    timeout = template.function_setting("ClassifyBatchFunction", "Timeout")
    assert _props(template, "IngestQueue")["VisibilityTimeout"] >= 6 * timeout


def test_redrive_policy_sends_to_the_dead_letter_queue_after_five(template: Template) -> None:
    redrive = _props(template, "IngestQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] >= 5
    env = template.doc["Globals"]["Function"]["Environment"]["Variables"]
    assert int(env["MAX_RECEIVE_COUNT"]) == redrive["maxReceiveCount"]  # `failed` is written on the last try


def test_bucket_is_private_encrypted_versioned_and_expires_old_data(template: Template) -> None:
    props = _props(template, "UploadBucket")
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] == "aws:kms"
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert "NoncurrentVersionExpiration" in rules["ExpireNoncurrentVersions"]
    assert "AbortIncompleteMultipartUpload" in rules["AbortIncompleteMultipartUploads"]


def test_queue_accepts_only_the_upload_bucket(template: Template) -> None:
    statements = {s["Sid"]: s for s in _props(template, "IngestQueuePolicy")["PolicyDocument"]["Statement"]}
    source = statements["UploadBucketOnly"]["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    assert source.endswith(_props(template, "UploadBucket")["BucketName"]["Fn::Sub"])


def test_sqs_event_source_batches_and_reports_item_failures(template: Template) -> None:
    event = template.sqs_event("ClassifyBatchFunction")
    assert event["BatchSize"] == 10
    assert event["MaximumBatchingWindowInSeconds"] > 0
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaximumConcurrency"}


def test_outputs_are_the_documented_ones(template: Template) -> None:
    assert set(template.doc["Outputs"]) == {
        "UploadBucketName",
        "UploadPrefix",
        "IngestQueueUrl",
        "DeadLetterQueueUrl",
        "ParkedQueueArn",
        "IngestQueueArn",
        "AlarmTopicArn",
        "ResultsTableName",
        "ResultsTopicArn",
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "EndpointName",
        "ClientUrl",
        "ClientBucketName",
        "ClientDistributionId",
        "ReportOutboxQueueUrl",
        "ReportOutboxQueueArn",
        "ReportDeadLetterQueueArn",
    }
    assert all(output.get("Description") for output in template.doc["Outputs"].values())


HOSTED_ORIGIN = {
    "Fn::If": ["HostClient", {"Fn::Sub": "https://${ClientDistribution.DomainName}"}, {"Ref": "AllowedOrigin"}]
}


def test_every_cors_origin_is_the_hosted_client_or_the_parameter(template: Template) -> None:
    raw = json.dumps(template.doc)
    assert raw.count(json.dumps(HOSTED_ORIGIN)) == 5  # bucket CORS, API env, API CORS, two gateway responses
    assert raw.count('{"Ref": "AllowedOrigin"}') == 6  # inside those, and the HostClient condition
    assert template.doc["Conditions"]["HostClient"] == {"Fn::Equals": [{"Ref": "AllowedOrigin"}, "hosted"]}


def test_the_hosted_client_is_private_behind_cloudfront_with_security_headers(template: Template) -> None:
    blocked = _props(template, "ClientBucket")["PublicAccessBlockConfiguration"]
    assert all(blocked.values())
    allow, deny = _props(template, "ClientBucketPolicy")["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert "ClientDistribution" in json.dumps(allow["Condition"]["StringEquals"])
    assert deny["Effect"] == "Deny"
    headers = _props(template, "ClientSecurityHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert {"ContentSecurityPolicy", "StrictTransportSecurity", "ContentTypeOptions", "FrameOptions"} <= set(headers)
    assert "frame-ancestors 'none'" in json.dumps(headers["ContentSecurityPolicy"])
    behaviour = _props(template, "ClientDistribution")["DistributionConfig"]["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert all(
        template.doc["Resources"][r].get("Condition") == "HostClient"
        for r in template.doc["Resources"]
        if r.startswith("Client")
    )


def test_api_routes(template: Template) -> None:
    assert sorted(template.api_routes("ApiFunction")) == [
        ("GET", "/results"),
        ("GET", "/results/{result_id}"),
        ("GET", "/results/{result_id}/sr"),
        ("POST", "/classify"),
        ("POST", "/uploads"),
    ]


def test_every_checkov_skip_has_a_reason(template: Template) -> None:
    for resource in template.resources.values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV_")
            assert len(skip["comment"]) > 30


def test_sam_validate_lint_is_clean() -> None:
    sam = Path(sys.executable).with_name("sam")
    done = subprocess.run(  # noqa: PLW1510 - the return code is the assertion
        [str(sam), "validate", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"SAM_CLI_TELEMETRY": "0", "PATH": str(sam.parent) + ":/usr/bin:/bin", "HOME": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_results_index_is_partitioned_by_owner(template: Template) -> None:
    props = _props(template, "ResultsTable")
    hash_keys = {
        index["IndexName"]: next(k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH")
        for index in props["GlobalSecondaryIndexes"]
    }
    assert hash_keys
    assert all(key.startswith("owner") for key in hash_keys.values())


def test_cors_origin_has_no_default_and_prod_names_no_localhost(template: Template) -> None:
    assert "Default" not in template.doc["Parameters"]["AllowedOrigin"]
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert "localhost" not in config["prod"]["deploy"]["parameters"]["parameter_overrides"]


def test_uploads_and_results_expire_after_their_retention_parameters(template: Template) -> None:
    rules = {r["Id"]: r for r in _props(template, "UploadBucket")["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireUploads"]["ExpirationInDays"] == {"Ref": "UploadRetentionDays"}
    assert _props(template, "ResultsTable")["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }
    env = template.doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["RESULT_RETENTION_DAYS"] == {"Ref": "ResultRetentionDays"}


def test_cognito_settings_are_parameters_and_only_admins_create_users(template: Template) -> None:
    pool = _props(template, "UserPool")
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == {"Ref": "PasswordMinimumLength"}
    assert pool["MfaConfiguration"] == {"Ref": "MfaConfiguration"}
    client = _props(template, "UserPoolClient")
    assert client["IdTokenValidity"] == {"Ref": "TokenValidityHours"}
    groups = {_props(template, g)["GroupName"]["Ref"] for g in template.of_type("AWS::Cognito::UserPoolGroup")}
    assert groups == {"ReadersGroupName", "AdminsGroupName"}


def test_every_alarm_notifies_the_alarm_topic(template: Template) -> None:
    alarms = template.of_type("AWS::CloudWatch::Alarm")
    assert {"DeadLettersAlarm", "IngestAgeAlarm", "BatchErrorsAlarm", "FailedResultsAlarm", "Endpoint5xxAlarm"} <= set(
        alarms
    )
    for alarm in alarms:
        assert _props(template, alarm)["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_dead_letters_are_settled_and_parked_for_redrive(template: Template) -> None:
    event = template.sqs_event("DeadLetterFunction")
    assert event["Queue"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    redrive = _props(template, "DeadLetterQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ParkedQueue", "Arn"]}
    # Receive counts carry over into the dead-letter queue: its limit must leave the function tries.
    ingest_limit = _props(template, "IngestQueue")["RedrivePolicy"]["maxReceiveCount"]
    assert redrive["maxReceiveCount"] >= ingest_limit + 3
    timeout = template.function_setting("DeadLetterFunction", "Timeout")
    assert _props(template, "DeadLetterQueue")["VisibilityTimeout"] >= 6 * timeout


def test_every_function_takes_its_packages_from_the_one_dependencies_layer(template: Template) -> None:
    layer = template.resources["DependenciesLayer"]
    assert (layer["Type"], layer["Metadata"]["BuildMethod"]) == ("AWS::Serverless::LayerVersion", "makefile")
    assert layer["Properties"]["CompatibleRuntimes"] == [template.doc["Globals"]["Function"]["Runtime"]]
    assert template.doc["Globals"]["Function"]["Layers"] == [{"Ref": "DependenciesLayer"}]
    for name in template.of_type("AWS::Serverless::Function"):
        assert "Layers" not in _props(template, name), name  # none replaces the shared one
    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    (targets,) = [line for line in makefile.splitlines() if line.startswith("build-ClassifyBatchFunction ")]
    functions = [k for k, v in template.resources.items() if v["Type"] == "AWS::Serverless::Function"]
    assert set(targets.rstrip(":").split()) == {f"build-{name}" for name in functions}  # every one, conditional too
    function_target = makefile.split(targets)[1]
    assert "pip install" not in function_target.split("build-DependenciesLayer:")[0]


def _endpoint_variant(mode: str) -> tuple[dict[str, Any], Template]:
    stack = Template(parameters={"EndpointMode": mode})
    stack.register("XrayModel", "xray-model", ModelName="xray-model")
    (variant,) = stack.properties("XrayEndpointConfig")["ProductionVariants"]
    return variant, stack


def test_the_default_endpoint_is_a_realtime_gpu_instance_that_autoscales() -> None:
    variant, stack = _endpoint_variant("realtime")
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g4dn.xlarge", 1)
    assert "ServerlessConfig" not in variant
    assert stack.included("EndpointScalableTarget")
    assert stack.included("EndpointScalingPolicy")


def test_the_serverless_mode_is_a_serverless_variant_without_instances_or_instance_scaling() -> None:
    variant, stack = _endpoint_variant("serverless")
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": "3072", "MaxConcurrency": "5"}
    assert not {"InstanceType", "InitialInstanceCount", "InitialVariantWeight"} & set(variant)
    assert not stack.included("EndpointScalableTarget")
    assert not stack.included("EndpointScalingPolicy")
    assert stack.included("XrayEndpoint")


@pytest.mark.parametrize(
    ("policy", "kind"),
    [
        ("UploadBucketPolicy", "AWS::S3::Bucket"),
        ("IngestQueuePolicy", "AWS::SQS::Queue"),
        ("DeadLetterQueuePolicy", "AWS::SQS::Queue"),
        ("ResultsTopicPolicy", "AWS::SNS::Topic"),
        ("AlarmTopicPolicy", "AWS::SNS::Topic"),
    ],
)
def test_every_bucket_queue_and_topic_refuses_plain_http(template: Template, policy: str, kind: str) -> None:
    statements = {s["Sid"]: s for s in _props(template, policy)["PolicyDocument"]["Statement"]}
    deny = statements["DenyInsecureTransport"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_every_queue_and_topic_has_a_policy(template: Template) -> None:
    covered: set[str] = set()
    for resource in template.resources.values():
        if resource["Type"] in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            for target in resource["Properties"].get("Queues", []) + resource["Properties"].get("Topics", []):
                # A queue that exists only under a condition is named in an Fn::If's first branch.
                covered.add(target["Fn::If"][1]["Ref"] if "Fn::If" in target else target["Ref"])
    every = [k for k, v in template.resources.items() if v["Type"] in ("AWS::SQS::Queue", "AWS::SNS::Topic")]
    assert covered == set(every)


@pytest.mark.parametrize("sid", ["S3SendsEncryptedNotifications", "CloudWatchAlarmsPublishEncrypted"])
def test_services_use_the_key_for_this_stacks_resources_only(template: Template, sid: str) -> None:
    statements = {s["Sid"]: s for s in _props(template, "DataKey")["KeyPolicy"]["Statement"]}
    condition = statements[sid]["Condition"]
    assert "aws:SourceAccount" in condition["StringEquals"]
    assert "aws:SourceArn" in (condition.get("ArnEquals") or condition.get("ArnLike"))


def test_the_deployed_app_client_proves_passwords_by_srp_only(template: Template) -> None:
    flows = _props(template, "UserPoolClient")["ExplicitAuthFlows"]
    assert "ALLOW_USER_PASSWORD_AUTH" not in flows
    assert "ALLOW_USER_SRP_AUTH" in flows


def test_mfa_is_on_by_default(template: Template) -> None:
    assert template.parameter("MfaConfiguration") == "ON"


def test_the_csp_connects_to_this_stacks_bucket_only(template: Template) -> None:
    policy = _props(template, "ClientSecurityHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = policy["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    assert "*.s3" not in csp
    assert "${AWS::StackName}-uploads-${AWS::AccountId}-${AWS::Region}.s3." in csp


# -- the PACS push (only with PacsDestinationHost) ------------------------------------------------------
PACS = {"PacsDestinationHost": "pacs.hospital.example", "PacsDestinationAETitle": "PACS"}
PUSH_RESOURCES = {
    "ReportOutboxQueue",
    "ReportDeadLetterQueue",
    "ReportDeadLetterQueuePolicy",
    "ReportPushFunction",
    "ReportPushLogGroup",
    "ReportDeadLettersAlarm",
    "ReportOutboxAgeAlarm",
}


def test_without_a_pacs_destination_nothing_of_the_push_is_deployed(template: Template) -> None:
    assert not PUSH_RESOURCES & {k for k in template.resources if template.included(k)}


def test_with_a_pacs_destination_the_push_and_its_alarms_are_deployed() -> None:
    pushed = Template(parameters=PACS)
    assert {k for k in pushed.resources if pushed.included(k)} >= PUSH_RESOURCES


def test_the_bucket_announces_only_structured_reports_to_the_outbox(template: Template) -> None:
    configurations = _props(template, "UploadBucket")["NotificationConfiguration"]["QueueConfigurations"]
    (outbox,) = [c["Fn::If"] for c in configurations if "Fn::If" in c]
    condition, when_pushing, otherwise = outbox
    assert (condition, otherwise) == ("PushReports", {"Ref": "AWS::NoValue"})
    assert when_pushing["Queue"] == {"Fn::GetAtt": ["ReportOutboxQueue", "Arn"]}
    assert when_pushing["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": {"Ref": "ExplanationPrefix"}},
        {"Name": "suffix", "Value": "report.dcm"},
    ]


def test_a_refused_push_is_retried_for_hours_then_kept_in_its_dead_letter_queue(template: Template) -> None:
    outbox = _props(template, "ReportOutboxQueue")
    assert outbox["VisibilityTimeout"] >= 6 * template.function_setting("ReportPushFunction", "Timeout")
    assert outbox["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ReportDeadLetterQueue", "Arn"]}
    hours = outbox["VisibilityTimeout"] * outbox["RedrivePolicy"]["maxReceiveCount"] / 3600
    assert hours >= 2
    assert _props(template, "ReportDeadLetterQueue")["MessageRetentionPeriod"] == 14 * 24 * 3600
    event = template.sqs_event("ReportPushFunction")
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_outbox_takes_messages_from_the_upload_bucket_only_and_over_tls_only() -> None:
    pushed = Template(parameters=PACS)
    for name in ("IngestQueue", "ReportOutboxQueue", "ReportDeadLetterQueue", "UploadBucket"):
        pushed.register(name, name, Arn=f"arn:{name}")
    statements = {s["Sid"]: s for s in pushed.properties("IngestQueuePolicy")["PolicyDocument"]["Statement"]}
    assert statements["UploadBucketOnly"]["Resource"] == ["arn:IngestQueue", "arn:ReportOutboxQueue"]
    assert statements["DenyInsecureTransport"]["Resource"] == ["arn:IngestQueue", "arn:ReportOutboxQueue"]
    assert pushed.properties("IngestQueuePolicy")["Queues"] == ["IngestQueue", "ReportOutboxQueue"]
    (deny,) = pushed.properties("ReportDeadLetterQueuePolicy")["PolicyDocument"]["Statement"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
