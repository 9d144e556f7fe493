"""boto3 clients, created once per Lambda container, with timeouts that fit the function's deadline.

No endpoint URLs here: the local stack points them at moto and the local SageMaker endpoint with
botocore's own AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME variables. The arithmetic
that ties these timeouts to the function timeout is in ``functions.common.deadline``.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from functions.common.config import Settings
from functions.common.deadline import CONNECT_S, endpoint_call_budget_s
from functions.common.endpoint import EndpointClient
from functions.common.explanations import S3Explanations
from functions.common.notify import Notifier
from functions.common.pipeline import DECODE_TIMEOUT_S, ClassificationPipeline, S3Objects
from functions.common.results import ResultsStore

# S3, DynamoDB, SNS, SQS, Secrets Manager: 3 attempts of at most 2 + 5 s (botocore's default is 60 s).
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=CONNECT_S, read_timeout=5)
# Presigned uploads must be SigV4: in some regions botocore would otherwise sign them with SigV2.
S3_CONFIG = AWS_CONFIG.merge(Config(signature_version="s3v4"))


def runtime_config(read_timeout_s: int, attempts: int) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=CONNECT_S, read_timeout=read_timeout_s
    )


def s3() -> Any:
    return boto3.client("s3", config=S3_CONFIG)


def sns() -> Any:
    return boto3.client("sns", config=AWS_CONFIG)


def sqs() -> Any:
    return boto3.client("sqs", config=AWS_CONFIG)


def sagemaker_runtime(read_timeout_s: int, attempts: int) -> Any:
    return boto3.client("sagemaker-runtime", config=runtime_config(read_timeout_s, attempts))


def dynamodb_table(name: str) -> Any:
    return boto3.resource("dynamodb", config=AWS_CONFIG).Table(name)


def secret_bytes(arn: str) -> bytes:
    """A Secrets Manager secret's value, read once per container (the page token key)."""
    value = boto3.client("secretsmanager", config=AWS_CONFIG).get_secret_value(SecretId=arn)["SecretString"]
    return str(value).encode()


def results_store(settings: Settings) -> ResultsStore:
    return ResultsStore(dynamodb_table(settings.results_table), settings.result_retention_days)


def explanations(settings: Settings, expiry_s: int = 300) -> S3Explanations:
    return S3Explanations(s3(), settings.upload_bucket, settings.explanation_prefix, expiry_s)


def classification_pipeline(
    settings: Settings,
    endpoint_attempts: int = 2,
    store: ResultsStore | None = None,
    decode_timeout_s: float = DECODE_TIMEOUT_S,
) -> ClassificationPipeline:
    """The pipeline the Lambdas use, wired to real clients once per container.

    The batch path gives the endpoint 2 attempts (the queue retries beyond that); the API 1, then 503.
    """
    return ClassificationPipeline(
        S3Objects(s3()),
        EndpointClient(
            sagemaker_runtime(settings.endpoint_read_timeout_s, endpoint_attempts),
            settings.endpoint_name,
            endpoint_call_budget_s(settings.endpoint_read_timeout_s, endpoint_attempts),
        ),
        store or results_store(settings),
        Notifier(sns(), settings.results_topic_arn),
        settings.max_object_bytes,
        upload_prefix=settings.upload_prefix,
        max_receive_count=settings.max_receive_count,
        notify_lease_s=settings.notify_lease_s,
        explanations=explanations(settings),
        reports=explanations(settings),
        decode_timeout_s=decode_timeout_s,
    )
