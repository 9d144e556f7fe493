"""The server (model.serving.inference) and its client (functions.common.endpoint) speak the one contract."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from functions.common.endpoint import INSTANCES_PER_REQUEST, EndpointClient, check_answer
from model.core import contract
from model.serving.inference import handle_invocation
from model.serving.runtime import Predictor
from tests import images


class ServerAsRuntime:
    """``sagemaker-runtime`` whose endpoint is the real handler, in process."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(json.loads(kwargs["Body"]))
        status, body = handle_invocation(self.predictor, kwargs["Body"], kwargs["ContentType"])
        assert status == 200, body

        class Body:
            def read(self) -> bytes:
                return body

        return {"Body": Body()}


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path) -> Predictor:
    return Predictor.load(tiny_model_dir, "onnx")


def test_the_servers_answer_passes_the_clients_check(predictor: Predictor) -> None:
    request: contract.Request = {
        "instances": [{"b64": base64.b64encode(data).decode()} for data in (images.xray_png(), b"not an image")],
        "explain": True,
    }
    status, body = handle_invocation(predictor, json.dumps(request).encode(), contract.JSON_TYPE)
    assert status == 200
    answer = check_answer(json.loads(body), 2)
    first, second = answer["predictions"]
    assert "error" not in first
    assert first["confidence"]["level"] in contract.CONFIDENCE_LEVELS
    assert "explanation" in first
    assert first["explanation"]["format"] == "png"
    assert "error" in second
    assert second["error"]["instance"] == 1


def test_the_client_sends_what_the_server_accepts_and_reads_its_answers(predictor: Predictor) -> None:
    runtime = ServerAsRuntime(predictor)
    uploads = [images.xray_png(seed=i) for i in range(INSTANCES_PER_REQUEST + 1)]
    verdicts = EndpointClient(runtime, "xray").classify(uploads, explain=True)
    assert [len(r["instances"]) for r in runtime.requests] == [INSTANCES_PER_REQUEST, 1]
    assert INSTANCES_PER_REQUEST <= contract.MAX_INSTANCES
    for verdict in verdicts:
        assert not isinstance(verdict, Exception)
        assert verdict.label in predictor.meta.labels
        assert verdict.heatmap is not None
        assert verdict.model["labels"] == predictor.meta.labels
