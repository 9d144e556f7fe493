from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from functions.common.aws_errors import ENDPOINT, S3_GET, aws_errors, condition_failed
from functions.common.errors import (
    EndpointUnavailableError,
    ObjectMissingError,
    PipelineError,
    RequestRefusedError,
    TransientError,
)


def _client_error(code: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "s3://bucket/patient-7.png"}, **extra}, "Op")


def _raised(exc: Exception, *args: Any, **kwargs: Any) -> PipelineError:
    with pytest.raises(PipelineError) as caught, aws_errors(*args, **kwargs):
        raise exc
    return caught.value


def test_a_missing_object_is_a_rejection_not_a_retry() -> None:
    assert isinstance(_raised(_client_error("NoSuchKey"), "S3 get_object", S3_GET), ObjectMissingError)


def test_a_model_error_below_500_refuses_the_request_and_above_may_pass() -> None:
    refused = _raised(_client_error("ModelError", OriginalStatusCode=415), "invoke", ENDPOINT, EndpointUnavailableError)
    failed = _raised(_client_error("ModelError", OriginalStatusCode=503), "invoke", ENDPOINT, EndpointUnavailableError)
    assert isinstance(refused, RequestRefusedError)
    assert isinstance(failed, EndpointUnavailableError)


def test_any_other_code_or_a_timeout_is_the_boundarys_transient_error_and_names_no_object() -> None:
    throttled = _raised(_client_error("ThrottlingException"), "invoke", ENDPOINT, EndpointUnavailableError)
    timeout = _raised(ReadTimeoutError(endpoint_url="https://s3/bucket/patient-7.png"), "S3 get_object", S3_GET)
    assert type(throttled) is EndpointUnavailableError
    assert type(timeout) is TransientError
    assert str(throttled) == "invoke failed: ThrottlingException"
    assert "patient" not in str(timeout)


def test_a_failed_condition_is_recognised_by_its_code() -> None:
    assert condition_failed(_client_error("ConditionalCheckFailedException"))
    assert not condition_failed(_client_error("ValidationException"))
