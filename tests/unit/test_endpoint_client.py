from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from functions.common.endpoint import MAX_BODY_BYTES, EndpointClient, chunk_by_size
from functions.common.errors import EndpointUnavailableError, ImageRejectedError


def test_chunks_stay_under_the_body_limit() -> None:
    images = [b"x" * 1_500_000] * 7  # ~2 MB each once base64-encoded
    chunks = chunk_by_size(images)
    assert sorted(i for c in chunks for i in c) == list(range(7))
    for chunk in chunks:
        assert sum(4 * ((len(images[i]) + 2) // 3) + 16 for i in chunk) + 256 <= MAX_BODY_BYTES


def test_small_images_share_a_request_up_to_the_instance_cap() -> None:
    assert [len(c) for c in chunk_by_size([b"x" * 1000] * 20)] == [16, 4]


def test_one_image_over_the_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="alone exceeds"):
        chunk_by_size([b"x" * 5_000_000])


@pytest.fixture
def runtime():  # type: ignore[no-untyped-def]
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _body(payload: dict) -> StreamingBody:  # type: ignore[type-arg]
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_batch_answers_map_back_to_images_including_per_instance_errors(runtime) -> None:  # type: ignore[no-untyped-def]
    model = {"name": "m", "version": "1", "task": "binary", "labels": ["covid", "no_findings"]}
    answer = {
        "model": model,
        "predictions": [
            {"label": "covid", "probabilities": {"covid": 0.9, "no_findings": 0.1}},
            {"error": {"instance": 1, "reason": "truncated", "message": "bad"}},
        ],
    }
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body(answer), "ContentType": "application/json"})
        verdicts = EndpointClient(runtime, "ep").classify([b"a", b"b"])
    assert verdicts[0].label == "covid"
    assert verdicts[1].rejection is not None
    assert verdicts[1].rejection.reason == "truncated"


@pytest.mark.parametrize(
    ("code", "status", "extra", "error"),
    [
        ("ThrottlingException", 400, {}, EndpointUnavailableError),
        ("ServiceUnavailable", 503, {}, EndpointUnavailableError),
        ("ModelError", 424, {"OriginalStatusCode": 500}, EndpointUnavailableError),
        ("ModelError", 424, {"OriginalStatusCode": 400}, ImageRejectedError),
        ("ValidationError", 400, {}, EndpointUnavailableError),
    ],
)
def test_errors_are_classified_as_transient_or_rejected(runtime, code, status, extra, error) -> None:  # type: ignore[no-untyped-def]
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            http_status_code=status,
            response_meta=None,
            modeled_fields=extra,
        )
        with pytest.raises(error):
            EndpointClient(runtime, "ep").classify([b"a"])
