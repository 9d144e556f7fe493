"""The SageMaker endpoint, called with several images per request and under the 6 MB body limit."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from functions.common.aws_errors import ENDPOINT, aws_errors
from functions.common.deadline import Deadline
from functions.common.errors import (
    DeadlineError,
    EndpointContractError,
    EndpointUnavailableError,
    ImageRejectedError,
    RequestRefusedError,
    TransientError,
)
from functions.common.reasons import MODEL_REJECTED
from model.core import contract

MAX_BODY_BYTES: Final = contract.MAX_BODY_BYTES
# JSON framing per instance ({"b64": ""},) plus the envelope, kept well clear of the limit.
_ENVELOPE: Final = 256
_PER_INSTANCE: Final = 16
# One request is one of the server's batches (one forward pass), well within what it accepts.
INSTANCES_PER_REQUEST: Final = contract.BATCH


@dataclass(frozen=True)
class Verdict:
    """The model's answer for one image: a prediction, or the reason it was refused."""

    label: str | None
    probabilities: dict[str, float]
    model: Mapping[str, Any]  # model.core.contract.ModelInfo; empty when no answer named the model
    rejection: ImageRejectedError | None = None
    gate: contract.Gate | None = None  # the model gate's score and threshold
    confidence: contract.Confidence | None = None
    heatmap: bytes | None = field(default=None, repr=False)  # PNG: the label's activation map
    preview: bytes | None = field(default=None, repr=False)  # PNG: the downsized image the model saw


def chunk_by_size(images: Sequence[bytes], limit: int = MAX_BODY_BYTES) -> list[list[int]]:
    """Indices of ``images`` grouped so each JSON request stays under ``limit`` bytes."""
    chunks: list[list[int]] = [[]]
    size = _ENVELOPE
    for index, image in enumerate(images):
        encoded = 4 * ((len(image) + 2) // 3) + _PER_INSTANCE
        if _ENVELOPE + encoded > limit:
            raise ValueError(f"image {index} alone exceeds the {limit}-byte request limit")
        if chunks[-1] and (size + encoded > limit or len(chunks[-1]) >= INSTANCES_PER_REQUEST):
            chunks.append([])
            size = _ENVELOPE
        chunks[-1].append(index)
        size += encoded
    return [c for c in chunks if c]


class EndpointClient:
    """The SageMaker endpoint as the pipeline's ``Classifier``.

    Per-image problems come back per image (``rejection``). A whole request refused with a 4xx is a
    contract or deploy problem, not the images' fault: the request is split and each image retried
    alone; only images refused alone while others pass are rejected, and if every image is refused
    the contract is broken (``EndpointContractError``, transient: retried, then ``failed``, alarmed).
    Every answer's shape is checked.
    """

    def __init__(self, runtime: Any, endpoint_name: str, call_budget_s: float = 0.0) -> None:
        self._runtime = runtime
        self._endpoint_name = endpoint_name
        self._call_budget_s = call_budget_s

    def _invoke(self, images: Sequence[bytes], explain: bool) -> contract.Response:
        request: contract.Request = {
            "instances": [{"b64": base64.b64encode(i).decode()} for i in images],
            "explain": explain,
        }
        body = json.dumps(request).encode()
        # Anything but a refused request (throttling, 5xx from the model or the service, an endpoint
        # not yet in service) may pass: botocore already retried it, the queue retries it, then dead-letters.
        with aws_errors("invoke_endpoint", ENDPOINT, otherwise=EndpointUnavailableError):
            response = self._runtime.invoke_endpoint(
                EndpointName=self._endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
            raw = response["Body"].read()
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise EndpointContractError("the endpoint answered with something that is not JSON") from exc
        return check_answer(answer, len(images))

    def _verdicts(self, images: Sequence[bytes], explain: bool = False) -> list[Verdict | TransientError]:
        try:
            answer = self._invoke(images, explain)
        except RequestRefusedError as exc:
            if len(images) == 1:
                return [EndpointContractError(f"a single image was refused as a request: {exc}")]
            alone = [self._verdicts([image], explain)[0] for image in images]
            if all(isinstance(v, EndpointContractError) for v in alone):
                return [EndpointContractError("every image was refused, alone too: the contract is broken")] * len(
                    images
                )
            rejection = ImageRejectedError(MODEL_REJECTED, "the model refused this image")
            return [Verdict(None, {}, {}, rejection) if isinstance(v, EndpointContractError) else v for v in alone]
        except TransientError as exc:
            return [exc] * len(images)
        return [_verdict(prediction, answer["model"]) for prediction in answer["predictions"]]

    def classify(
        self, images: Sequence[bytes], deadline: Deadline | None = None, explain: bool = False
    ) -> list[Verdict | TransientError]:
        """One verdict (or the transient error that kept it from one) per image, in order."""
        verdicts: list[Verdict | TransientError] = [DeadlineError("no time left for the endpoint")] * len(images)
        for chunk in chunk_by_size(images):
            if deadline is not None and deadline.remaining_s() < self._call_budget_s:
                break
            for index, verdict in zip(chunk, self._verdicts([images[i] for i in chunk], explain), strict=True):
                verdicts[index] = verdict
        return verdicts


def _verdict(prediction: contract.Prediction | contract.Refusal, model: Mapping[str, Any]) -> Verdict:
    if "error" in prediction:
        error = prediction["error"]
        gate = error.get("gate")
        rejection = ImageRejectedError(str(error.get("reason", "invalid_image")), str(error.get("message", "")), gate)
        return Verdict(None, {}, model, rejection, gate)
    explanation = prediction.get("explanation")
    heatmap = base64.b64decode(explanation["b64"]) if explanation is not None else None
    return Verdict(
        prediction["label"],
        prediction["probabilities"],
        model,
        gate=prediction.get("gate"),
        confidence=prediction.get("confidence"),
        heatmap=heatmap,
    )


def check_answer(answer: Any, count: int) -> contract.Response:
    """The endpoint's answer if it has the contract's shape (``model.core.contract.Response``), else
    EndpointContractError. What the Lambdas read of it is checked; the rest passes through."""
    if not isinstance(answer, dict) or not isinstance(answer.get("model"), dict):
        raise EndpointContractError("the answer has no model description")
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != count:
        raise EndpointContractError(f"the answer does not have {count} predictions")
    for prediction in predictions:
        if not isinstance(prediction, dict):
            raise EndpointContractError("a prediction is not an object")
        if "error" in prediction and not isinstance(prediction["error"], dict):
            raise EndpointContractError("a prediction's error is not an object")
        gate = prediction.get("error", prediction).get("gate")
        if gate is not None and not (isinstance(gate, dict) and isinstance(gate.get("score"), int | float)):
            raise EndpointContractError("a prediction's gate has no numeric score")
        if "error" in prediction:
            continue
        confidence = prediction.get("confidence")
        levels = contract.CONFIDENCE_LEVELS
        if confidence is not None and not (isinstance(confidence, dict) and confidence.get("level") in levels):
            raise EndpointContractError("a prediction's confidence has no known level")
        explanation = prediction.get("explanation")
        if explanation is not None and not (isinstance(explanation, dict) and _is_base64(explanation.get("b64"))):
            raise EndpointContractError("a prediction's explanation is not a base64 PNG")
        probabilities = prediction.get("probabilities")
        if (
            not isinstance(prediction.get("label"), str)
            or not isinstance(probabilities, dict)
            or not probabilities
            or not all(isinstance(k, str) and isinstance(v, int | float) for k, v in probabilities.items())
            or prediction["label"] not in probabilities
        ):
            raise EndpointContractError("a prediction lacks a label or its probabilities")
    return cast(contract.Response, answer)


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True
