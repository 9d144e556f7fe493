"""boto3 clients, created once per Lambda container.

No endpoint URLs here: the local stack points them at moto and the local SageMaker endpoint with
botocore's own AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME variables.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from functions.common.config import Settings
from functions.common.endpoint import EndpointClient
from functions.common.notify import Notifier
from functions.common.pipeline import ClassificationPipeline
from functions.common.results import ResultsStore

# Standard mode retries throttling, 5xx and timeouts with exponential backoff and jitter; 3 attempts
# of at most 20 s each stay inside the 60 s function timeout.
RUNTIME_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=20)
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
# Presigned uploads must be SigV4: in some regions botocore would otherwise sign them with SigV2.
S3_CONFIG = AWS_CONFIG.merge(Config(signature_version="s3v4"))


def s3() -> Any:
    return boto3.client("s3", config=S3_CONFIG)


def secret_bytes(arn: str) -> bytes:
    """A Secrets Manager secret's value, read once per container (the page token key)."""
    value = boto3.client("secretsmanager", config=AWS_CONFIG).get_secret_value(SecretId=arn)["SecretString"]
    return str(value).encode()


def sns() -> Any:
    return boto3.client("sns", config=AWS_CONFIG)


def sagemaker_runtime() -> Any:
    return boto3.client("sagemaker-runtime", config=RUNTIME_CONFIG)


def dynamodb_table(name: str) -> Any:
    return boto3.resource("dynamodb", config=AWS_CONFIG).Table(name)


def classification_pipeline(settings: Settings) -> ClassificationPipeline:
    """The pipeline both Lambdas use, wired to real clients once per container."""
    return ClassificationPipeline(
        s3(),
        EndpointClient(sagemaker_runtime(), settings.endpoint_name),
        ResultsStore(dynamodb_table(settings.results_table), settings.result_retention_days),
        Notifier(sns(), settings.results_topic_arn),
        settings.max_object_bytes,
        upload_prefix=settings.upload_prefix,
    )
