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


def s3() -> Any:
    return boto3.client("s3", config=AWS_CONFIG)


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
        ResultsStore(dynamodb_table(settings.results_table)),
        Notifier(sns(), settings.results_topic_arn),
        settings.max_object_bytes,
    )
