"""SageMaker inference handlers (``model_fn``/``input_fn``/``predict_fn``/``output_fn``).

Packaged as ``code/inference.py`` in ``model.tar.gz`` next to a copy of this package, so the
SageMaker PyTorch container, a Neo-compiled GPU endpoint and the local endpoint (``model.serving.serve``)
all run this file. ``handle_invocation`` is the whole request path in one call for servers that are
not the SageMaker toolkit.

Requests: ``image/png``, ``image/jpeg``, ``application/dicom``, ``application/x-image`` (one image, raw bytes) or
``application/json`` ``{"instances": [{"b64": "..."}], "explain": false}``. An explanation (class
activation map) is asked for with ``"explain": true`` or the custom attribute ``explain=true``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.core import contract, errors
from model.core.contract import IMAGE_TYPES, JSON_TYPE, MAX_BODY_BYTES, MAX_INSTANCES
from model.serving.runtime import InstanceError, PredictionResult, Predictor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceRequest:
    images: list[bytes]
    explain: bool
    batch: bool


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "cam"})


def explain_from_custom_attributes(custom_attributes: str | None) -> bool:
    """``X-Amzn-SageMaker-Custom-Attributes: explain=true`` (comma- or semicolon-separated pairs)."""
    for pair in (custom_attributes or "").replace(";", ",").split(","):
        key, _, value = pair.partition("=")
        if key.strip().lower() == "explain":
            return _flag(value)
    return False


def _parse_json(body: bytes) -> tuple[list[bytes], bool]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.MalformedRequestError("body is not valid JSON") from exc
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise errors.MalformedRequestError('expected {"instances": [{"b64": "..."}, ...]} with at least one')
    if len(instances) > MAX_INSTANCES:
        raise errors.MalformedRequestError(f"{len(instances)} instances; at most {MAX_INSTANCES} per request")
    images = []
    for index, instance in enumerate(instances):
        encoded = instance.get("b64") if isinstance(instance, dict) else None
        if not isinstance(encoded, str):
            raise errors.MalformedRequestError(f'instance {index}: expected an object with a "b64" string')
        try:
            images.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise errors.MalformedRequestError(f"instance {index}: b64 is not valid base64") from exc
    return images, _flag(document.get("explain", False))


def parse_request(body: bytes, content_type: str | None, custom_attributes: str | None = None) -> InferenceRequest:
    if len(body) > MAX_BODY_BYTES:
        raise errors.PayloadTooLargeError(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    media = _media_type(content_type)
    explain = explain_from_custom_attributes(custom_attributes)
    if media in IMAGE_TYPES:
        return InferenceRequest([bytes(body)], explain, batch=False)
    if media == JSON_TYPE:
        images, json_explain = _parse_json(body)
        return InferenceRequest(images, explain or json_explain, batch=True)
    raise errors.UnsupportedContentTypeError(
        f"content type {media or '(none)'!r} is not supported; use {', '.join(sorted(IMAGE_TYPES))} or {JSON_TYPE}"
    )


def run(predictor: Predictor, request: InferenceRequest) -> contract.Response:
    result: PredictionResult = predictor.predict(request.images, explain=request.explain)
    if not request.batch and isinstance(result.items[0], InstanceError):
        # A single bad image is the caller's error as a whole: a 4xx, not a 200 with an error inside.
        raise result.items[0].error
    return {"model": predictor.model_info(), "predictions": [item.to_dict() for item in result.items]}


def error_body(exc: errors.XrayModelError) -> contract.Refusal:
    if isinstance(exc, errors.InvalidImageError):
        return InstanceError(0, exc).to_dict()
    return {"error": {"instance": None, "reason": getattr(exc, "reason", type(exc).__name__), "message": str(exc)}}


def handle_invocation(
    predictor: Predictor, body: bytes, content_type: str | None, custom_attributes: str | None = None
) -> tuple[int, bytes]:
    """The whole request path for any server: returns (HTTP status, JSON body)."""
    payload: contract.Response | contract.Refusal
    try:
        payload = run(predictor, parse_request(body, content_type, custom_attributes))
        status = 200
    except errors.InvalidRequestError as exc:
        payload, status = error_body(exc), exc.http_status
    return status, json.dumps(payload).encode()


# --- SageMaker inference toolkit entry points -------------------------------------------------


def _toolkit_error(exc: errors.XrayModelError) -> Exception:
    """Wrap in the toolkit's error type so the container answers 4xx instead of 500."""
    try:
        from sagemaker_inference.errors import GenericInferenceToolkitError  # type: ignore[import-not-found]
    except ImportError:
        return exc
    return GenericInferenceToolkitError(exc.http_status, json.dumps(error_body(exc)))  # type: ignore[no-any-return]


def model_fn(model_dir: str, context: Any = None) -> Predictor:
    predictor = Predictor.load(Path(model_dir))
    logger.info("loaded model %s backend=%s", predictor.meta.version, predictor.backend.name)
    return predictor


def input_fn(request_body: bytes, content_type: str, context: Any = None) -> InferenceRequest:
    attributes = None
    if context is not None and hasattr(context, "get_request_header"):
        attributes = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    try:
        return parse_request(body, content_type, attributes)
    except errors.XrayModelError as exc:
        raise _toolkit_error(exc) from exc


def predict_fn(data: InferenceRequest, model: Predictor, context: Any = None) -> contract.Response:
    try:
        return run(model, data)
    except errors.XrayModelError as exc:
        raise _toolkit_error(exc) from exc


def output_fn(prediction: contract.Response, accept: str | None = None, context: Any = None) -> tuple[bytes, str]:
    return json.dumps(prediction).encode(), JSON_TYPE
