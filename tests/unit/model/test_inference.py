from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from model.core import errors
from model.serving.inference import explain_from_custom_attributes, handle_invocation, parse_request
from model.serving.runtime import Predictor
from tests import images


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path) -> Predictor:
    return Predictor.load(tiny_model_dir, "onnx")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "application/x-image", "image/png; q=1"])
def test_raw_image_content_types_are_one_instance(content_type: str) -> None:
    request = parse_request(images.png(), content_type)
    assert len(request.images) == 1
    assert not request.batch


def test_json_batch_is_parsed() -> None:
    body = json.dumps({"instances": [{"b64": _b64(images.png())}, {"b64": _b64(images.jpeg())}], "explain": True})
    request = parse_request(body.encode(), "application/json")
    assert len(request.images) == 2
    assert request.explain


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"x", "text/plain", errors.UnsupportedContentTypeError),
        (b"x", None, errors.UnsupportedContentTypeError),
        (b"{", "application/json", errors.MalformedRequestError),
        (b'{"instances": []}', "application/json", errors.MalformedRequestError),
        (b'{"instances": [{"b64": "***"}]}', "application/json", errors.MalformedRequestError),
        (b"\0" * 6_291_457, "image/png", errors.PayloadTooLargeError),
    ],
    ids=["text", "no-type", "bad-json", "no-instances", "bad-b64", "oversize"],
)
def test_malformed_requests_raise(body: bytes, content_type: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_request(body, content_type)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("explain=true", True), ("a=b,explain=1", True), ("explain=false", False), (None, False)],
)
def test_explain_custom_attribute(value: str | None, expected: bool) -> None:
    assert explain_from_custom_attributes(value) is expected


def test_prediction_shape_and_calibrated_probabilities(predictor: Predictor) -> None:
    status, body = handle_invocation(predictor, images.png(), "image/png")
    answer = json.loads(body)
    assert status == 200
    assert answer["model"] == {
        "name": "tiny-test",
        "version": "test-multiclass",
        "task": "multiclass",
        "labels": ["covid", "no_findings", "pneumonia"],
    }
    (prediction,) = answer["predictions"]
    assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_temperature_softens_probabilities(predictor: Predictor) -> None:
    import numpy as np

    from model.serving.policy import softmax

    logits = np.array([[2.0, 0.0, -1.0]], np.float32)
    assert softmax(logits, 1.5)[0, 0] < softmax(logits, 1.0)[0, 0]


def test_single_bad_image_is_a_400_naming_the_reason(predictor: Predictor) -> None:
    status, body = handle_invocation(predictor, images.PDF, "image/png")
    assert status == 400
    assert json.loads(body)["error"]["reason"] == "not_an_image"


def test_bad_instance_in_a_batch_is_reported_alone(predictor: Predictor) -> None:
    instances = [
        {"b64": _b64(images.png())},
        {"b64": _b64(images.truncated(images.png(256)))},
        {"b64": _b64(images.jpeg())},
    ]
    status, body = handle_invocation(predictor, json.dumps({"instances": instances}).encode(), "application/json")
    predictions = json.loads(body)["predictions"]
    assert status == 200
    assert [("error" in p) for p in predictions] == [False, True, False]
    assert predictions[1]["error"] == {
        "instance": 1,
        "reason": "truncated",
        "message": predictions[1]["error"]["message"],
    }


def test_explanation_is_a_small_png_heatmap(predictor: Predictor) -> None:
    import io

    from PIL import Image

    status, body = handle_invocation(predictor, images.png(), "image/png", "explain=true")
    explanation = json.loads(body)["predictions"][0]["explanation"]
    heatmap = Image.open(io.BytesIO(base64.b64decode(explanation["b64"])))
    assert status == 200
    assert (heatmap.format, heatmap.size, heatmap.mode) == ("PNG", (64, 64), "L")


def test_batch_gives_same_answer_as_single(predictor: Predictor) -> None:
    image = images.jpeg(seed=5)
    _, single = handle_invocation(predictor, image, "image/jpeg")
    _, batch = handle_invocation(
        predictor, json.dumps({"instances": [{"b64": _b64(image)}] * 3}).encode(), "application/json"
    )
    expected = json.loads(single)["predictions"][0]["probabilities"]
    for prediction in json.loads(batch)["predictions"]:
        assert prediction["probabilities"] == pytest.approx(expected, abs=1e-5)
