"""The local endpoint through real boto3 ``sagemaker-runtime`` clients and plain HTTP."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from tests import images

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runtime(local_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=local_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def _invoke(runtime, body: bytes, content_type: str, **kwargs):  # type: ignore[no-untyped-def]
    response = runtime.invoke_endpoint(EndpointName="xray", Body=body, ContentType=content_type, **kwargs)
    return json.loads(response["Body"].read())


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(images.png(), "image/png"), (images.jpeg(), "image/jpeg"), (images.png(), "application/x-image")],
    ids=["png", "jpeg", "x-image"],
)
def test_invoke_endpoint_with_raw_images(runtime, body: bytes, content_type: str) -> None:  # type: ignore[no-untyped-def]
    answer = _invoke(runtime, body, content_type)
    assert answer["model"]["labels"] == ["covid", "no_findings", "pneumonia"]
    assert sum(answer["predictions"][0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_a_json_batch_answers_each_image_as_it_is_answered_alone(runtime) -> None:  # type: ignore[no-untyped-def]
    pngs = [images.xray_png(128, seed=i) for i in range(5)]
    body = json.dumps({"instances": [{"b64": base64.b64encode(png).decode()} for png in pngs]})
    batch = _invoke(runtime, body.encode(), "application/json")["predictions"]
    alone = [_invoke(runtime, png, "image/png")["predictions"][0] for png in pngs]
    assert [p["label"] for p in batch] == [p["label"] for p in alone]
    for together, single in zip(batch, alone, strict=True):
        for label, probability in single["probabilities"].items():
            assert together["probabilities"][label] == pytest.approx(probability, abs=1e-4)


def test_explanation_through_custom_attributes(runtime) -> None:  # type: ignore[no-untyped-def]
    answer = _invoke(runtime, images.png(), "image/png", CustomAttributes="explain=true")
    assert answer["predictions"][0]["explanation"]["format"] == "png"


@pytest.mark.parametrize(
    ("body", "content_type", "reason", "status"),
    [
        (b"", "image/png", "empty", 400),
        (b"\x13\x37" * 500, "image/png", "not_an_image", 400),
        (images.PDF, "image/png", "not_an_image", 400),
        (images.HTML, "image/png", "not_an_image", 400),
        (images.truncated(images.png(256, seed=1)), "image/png", "truncated", 400),
        (images.truncated(images.jpeg(256, seed=1)), "image/jpeg", "truncated", 400),
        (images.huge_declared_png(), "image/png", "decompression_bomb", 400),
        (images.png(1), "image/png", "too_small", 400),
        (images.png(), "text/csv", "UnsupportedContentTypeError", 415),
    ],
    ids=["empty", "random", "pdf", "html", "trunc-png", "trunc-jpeg", "bomb", "1x1", "wrong-type"],
)
def test_bad_inputs_are_model_errors_with_the_reason(runtime, body, content_type, reason, status) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName="xray", Body=body, ContentType=content_type)
    error = caught.value.response
    assert error["OriginalStatusCode"] == status
    assert json.loads(error["OriginalMessage"])["error"]["reason"] == reason
    # ...and the server keeps serving.
    assert _invoke(runtime, images.png(), "image/png")["predictions"]


@pytest.mark.parametrize(
    "data",
    [images.png16(), images.palette_png(), images.rgba_png(), images.cmyk_jpeg(), images.exif_rotated_jpeg()],
    ids=["16-bit", "palette", "rgba", "cmyk", "exif-rotated"],
)
def test_unusual_but_valid_images_are_classified(runtime, data: bytes) -> None:  # type: ignore[no-untyped-def]
    content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    answer = _invoke(runtime, data, content_type)
    prediction = answer["predictions"][0]
    assert prediction["label"] in answer["model"]["labels"]
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_oversize_body_is_refused_like_the_real_service(runtime) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(runtime.exceptions.ValidationError):
        runtime.invoke_endpoint(EndpointName="xray", Body=b"\0" * 6_291_457, ContentType="image/png")
    assert _invoke(runtime, images.png(), "image/png")["predictions"]


def test_container_contract_ping_and_invocations(local_endpoint: str) -> None:
    with urllib.request.urlopen(f"{local_endpoint}/ping") as response:
        assert response.status == 200
    request = urllib.request.Request(
        f"{local_endpoint}/invocations", data=images.PDF, headers={"Content-Type": "image/png"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400


def test_concurrent_requests_are_all_served(runtime) -> None:  # type: ignore[no-untyped-def]
    bodies = [images.png(seed=i) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: _invoke(runtime, b, "image/png"), bodies))
    one_by_one = [_invoke(runtime, b, "image/png") for b in bodies]
    assert [a["predictions"] for a in answers] == [a["predictions"] for a in one_by_one]
