from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from functions.common.endpoint import MAX_BODY_BYTES, EndpointClient, chunk_by_size
from functions.common.errors import DeadlineError, EndpointContractError, EndpointUnavailableError


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


MODEL = {"name": "m", "version": "1", "task": "binary", "labels": ["covid", "no_findings"]}
GOOD = {"label": "covid", "probabilities": {"covid": 0.9, "no_findings": 0.1}}


def _refused(stub: Stubber, original: int = 400) -> None:
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": original},
    )


def _answers(stub: Stubber, *predictions: dict) -> None:  # type: ignore[type-arg]
    stub.add_response(
        "invoke_endpoint",
        {"Body": _body({"model": MODEL, "predictions": list(predictions)}), "ContentType": "application/json"},
    )


@pytest.mark.parametrize(
    ("code", "status", "extra"),
    [
        ("ThrottlingException", 400, {}),
        ("ServiceUnavailable", 503, {}),
        ("ModelError", 424, {"OriginalStatusCode": 500}),
        ("ValidationError", 400, {}),
    ],
)
def test_service_and_model_failures_are_transient(runtime, code, status, extra) -> None:  # type: ignore[no-untyped-def]
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=status, modeled_fields=extra)
        (verdict,) = EndpointClient(runtime, "ep").classify([b"a"])
    assert isinstance(verdict, EndpointUnavailableError)


def test_a_refused_request_is_split_and_only_the_image_refused_alone_is_rejected(runtime) -> None:  # type: ignore[no-untyped-def]
    with Stubber(runtime) as stub:
        _refused(stub)  # the request of three
        _answers(stub, GOOD)
        _refused(stub)  # the second image, alone
        _answers(stub, GOOD)
        verdicts = EndpointClient(runtime, "ep").classify([b"a", b"b", b"c"])
    assert [v.label for v in verdicts] == ["covid", None, "covid"]  # type: ignore[union-attr]
    assert verdicts[1].rejection.reason == "model_rejected"  # type: ignore[union-attr]


def test_a_request_refused_for_every_image_is_a_broken_contract_not_a_rejection(runtime) -> None:  # type: ignore[no-untyped-def]
    with Stubber(runtime) as stub:
        for _ in range(3):
            _refused(stub)
        verdicts = EndpointClient(runtime, "ep").classify([b"a", b"b"])
    assert all(isinstance(v, EndpointContractError) for v in verdicts)


@pytest.mark.parametrize(
    "answer",
    [
        {"predictions": [GOOD]},  # no model
        {"model": MODEL},  # no predictions
        {"model": MODEL, "predictions": []},  # too few
        {"model": MODEL, "predictions": [{"label": "covid"}]},  # no probabilities
        {"model": MODEL, "predictions": [{"label": "covid", "probabilities": {"covid": "high"}}]},
        {"model": MODEL, "predictions": ["covid"]},
        {"model": MODEL, "predictions": [{**GOOD, "confidence": {"level": "sure"}}]},
        [],
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_broken_contract(runtime, answer) -> None:  # type: ignore[no-untyped-def]
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body(answer), "ContentType": "application/json"})
        (verdict,) = EndpointClient(runtime, "ep").classify([b"a"])
    assert isinstance(verdict, EndpointContractError)


class _NoTimeLeft:
    def remaining_s(self) -> float:
        return 1.0


def test_no_request_is_sent_without_time_for_it(runtime) -> None:  # type: ignore[no-untyped-def]
    with Stubber(runtime):  # any call would fail: nothing is queued
        (verdict,) = EndpointClient(runtime, "ep", call_budget_s=30).classify([b"a"], _NoTimeLeft())
    assert isinstance(verdict, DeadlineError)


def test_explain_asks_for_the_heatmap_and_decodes_it(runtime) -> None:  # type: ignore[no-untyped-def]
    import base64

    heat = b"\x89PNG fake heatmap"
    answer = {"model": MODEL, "predictions": [{**GOOD, "explanation": {"b64": base64.b64encode(heat).decode()}}]}
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body(answer), "ContentType": "application/json"})
        (verdict,) = EndpointClient(runtime, "ep").classify([b"a"], explain=True)
    assert verdict.heatmap == heat


def test_an_explanation_that_is_not_base64_breaks_the_contract(runtime) -> None:  # type: ignore[no-untyped-def]
    answer = {"model": MODEL, "predictions": [{**GOOD, "explanation": {"b64": "not base64!"}}]}
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body(answer), "ContentType": "application/json"})
        (verdict,) = EndpointClient(runtime, "ep").classify([b"a"], explain=True)
    assert isinstance(verdict, EndpointContractError)


def test_the_confidence_of_an_answer_reaches_the_verdict(runtime) -> None:  # type: ignore[no-untyped-def]
    low = {"level": "low", "reasons": ["not_validated_on_unseen_sources"]}
    answer = {"model": MODEL, "predictions": [{**GOOD, "confidence": low}]}
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", {"Body": _body(answer), "ContentType": "application/json"})
        (verdict,) = EndpointClient(runtime, "ep").classify([b"a"])
    assert verdict.confidence == low
