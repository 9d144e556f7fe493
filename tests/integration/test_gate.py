"""The bundled model's input gate (the lung fields, then the feature distance), through the local
SageMaker endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from local_stack.wsgi import BackgroundServer
from model.serving.runtime import Predictor
from model.serving.serve import EndpointApp
from tests import dicoms, images

pytestmark = pytest.mark.integration
SAMPLE = images.SAMPLE_XRAYS[1].read_bytes()
# The two ways the gate says "no chest X-ray": no pair of lungs found, or features far from any X-ray.
NOT_A_CHEST = ("no_lung_fields", "not_a_chest_xray")
# An inverted X-ray's dark-on-bright lungs can also look like lungs turned over: refused either way.
REFUSED = (*NOT_A_CHEST, "not_upright")


@pytest.fixture(scope="module")
def runtime(bundled_model: Path) -> Iterator[Any]:
    with BackgroundServer(EndpointApp(Predictor.load(bundled_model))) as endpoint:
        yield boto3.client(
            "sagemaker-runtime",
            endpoint_url=endpoint.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )


def _invoke(runtime: Any, body: bytes, content_type: str = "image/png") -> dict[str, Any]:
    try:
        answer = runtime.invoke_endpoint(EndpointName="e", Body=body, ContentType=content_type)["Body"].read()
    except ClientError as exc:
        return json.loads(exc.response["OriginalMessage"])  # type: ignore[no-any-return]
    return json.loads(answer)["predictions"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("sample", images.SAMPLE_XRAYS, ids=lambda p: p.name)
def test_the_sample_xrays_pass_the_gate(runtime: Any, sample: Path) -> None:
    prediction = _invoke(runtime, sample.read_bytes())
    assert prediction["gate"]["score"] <= prediction["gate"]["threshold"]
    assert prediction["label"] in prediction["probabilities"]


@pytest.mark.parametrize(
    "body",
    [
        images.photograph(seed=0),
        images.photograph(seed=5),
        images.text_page(),
        images.encode(Image.new("L", (400, 400), 255), "PNG"),
        images.encode(Image.new("L", (400, 400), 0), "PNG"),
        images.encode(Image.fromarray((np.random.default_rng(0).random((300, 300)) * 255).astype(np.uint8)), "PNG"),
        images.png(300),
        images.inverted(SAMPLE),
    ],
    ids=["photo", "photo2", "text", "white", "black", "noise", "gradient", "inverted"],
)
def test_what_is_no_chest_xray_is_refused(runtime: Any, body: bytes) -> None:
    assert _invoke(runtime, body)["error"]["reason"] in REFUSED


def test_a_refusal_carries_the_feature_distance_only_where_the_classifier_ran(runtime: Any) -> None:
    error = _invoke(runtime, images.inverted(SAMPLE))["error"]
    assert error["reason"] in REFUSED
    if error["reason"] == "not_a_chest_xray":
        assert error["gate"]["score"] > error["gate"]["threshold"]
    else:
        assert "gate" not in error  # refused before the classifier ran


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_chest_xray_is_refused_as_not_upright(runtime: Any, degrees: int) -> None:
    assert _invoke(runtime, images.turned(SAMPLE, degrees))["error"]["reason"] == "not_upright"


def test_a_refusal_in_a_batch_leaves_the_others_classified(runtime: Any) -> None:
    import base64

    bodies = [SAMPLE, images.photograph(seed=1), images.turned(SAMPLE, 90)]
    body = json.dumps({"instances": [{"b64": base64.b64encode(b).decode()} for b in bodies]})
    answer = json.loads(
        runtime.invoke_endpoint(EndpointName="e", Body=body, ContentType="application/json")["Body"].read()
    )
    first, photo, turned = answer["predictions"]
    assert "label" in first
    assert photo["error"]["instance"] == 1
    assert photo["error"]["reason"] in NOT_A_CHEST
    assert (turned["error"]["instance"], turned["error"]["reason"]) == (2, "not_upright")


def test_a_dicom_of_a_sample_passes_the_gate_like_its_png(runtime: Any) -> None:
    pixels = np.asarray(Image.open(images.SAMPLE_XRAYS[1]).convert("L"))
    from_dicom = _invoke(runtime, dicoms.dicom(pixels), "application/dicom")
    from_png = _invoke(runtime, SAMPLE)
    assert from_dicom["label"] == from_png["label"]
    assert from_dicom["gate"]["score"] == pytest.approx(from_png["gate"]["score"], abs=0.05)
