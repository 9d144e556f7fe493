"""API Lambda (API Gateway REST, Cognito-authorised): classify one image, read results, get upload URLs.

POST /classify          raw image body (image/png | image/jpeg), <= SYNC_MAX_IMAGE_BYTES; ?store=true keeps it
GET  /results/{id}      one result
GET  /results           ?key=OBJECT_KEY | ?status= | ?label= | ?date=YYYY-MM-DD, &limit=&next_token=
POST /uploads           {"filename": "...", "content_type": "image/png"} -> presigned PUT URL
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from functions.common import clients
from functions.common.config import Settings
from functions.common.errors import (
    ApiError,
    BadRequestError,
    EndpointUnavailableError,
    ImageRejectedError,
    PayloadTooLargeError,
)
from functions.common.s3_events import ObjectRef
from model.errors import InvalidImageError
from model.preprocessing import downsize_png

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = Settings.from_env()
pipeline = clients.classification_pipeline(settings)
results, endpoint = pipeline.store, pipeline.endpoint
s3 = clients.s3()
app = APIGatewayRestResolver(enable_validation=True, cors=CORSConfig(allow_origin=settings.allowed_origin, max_age=300))
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg"}


class UploadRequest(BaseModel):
    filename: str = Field(default="upload", max_length=200)
    content_type: Literal["image/png", "image/jpeg"] = "image/png"


def _error(status: int, reason: str, message: str) -> Response[Any]:
    return Response(
        status_code=status, content_type="application/json", body={"error": {"reason": reason, "message": message}}
    )


@app.exception_handler(ApiError)
def api_error(exc: ApiError) -> Response[Any]:
    return _error(exc.status, type(exc).__name__, str(exc))


@app.exception_handler(InvalidImageError)
def invalid_image(exc: InvalidImageError) -> Response[Any]:
    return _error(exc.http_status, exc.reason, str(exc))


@app.exception_handler(ImageRejectedError)
def rejected_image(exc: ImageRejectedError) -> Response[Any]:
    return _error(400, exc.reason, str(exc))


@app.exception_handler(EndpointUnavailableError)
def endpoint_unavailable(exc: EndpointUnavailableError) -> Response[Any]:
    return _error(503, "endpoint_unavailable", "the model endpoint is busy or unavailable; retry later")


def _body_bytes() -> bytes:
    event = app.current_event
    if event.body is None:
        return b""
    return base64.b64decode(event.body) if event.is_base64_encoded else event.body.encode("latin-1")


@app.post("/classify")
@tracer.capture_method(capture_response=False)
def classify(store: bool = False) -> dict[str, Any]:
    image = _body_bytes()
    if len(image) > settings.sync_max_image_bytes:
        raise PayloadTooLargeError(
            f"{len(image)} bytes; POST /classify takes at most {settings.sync_max_image_bytes}: use POST /uploads"
        )
    (verdict,) = endpoint.classify([downsize_png(image)])
    if verdict.rejection is not None:
        raise verdict.rejection
    metrics.add_metric(name="SyncClassified", unit=MetricUnit.Count, value=1)
    answer: dict[str, Any] = {
        "label": verdict.label,
        "probabilities": verdict.probabilities,
        "model": verdict.model,
    }
    if store:
        digest = hashlib.sha256(image).hexdigest()
        ref = ObjectRef("api", digest, None, digest, len(image), "", dt.datetime.now(dt.UTC).isoformat())
        pipeline.finalize(ref, verdict, source="api")
        answer["result_id"] = ref.result_id
    return answer


@app.get("/results/<result_id>")
def get_result(result_id: str) -> dict[str, Any]:
    return results.get(result_id)


@app.get("/results")
def list_results(
    key: str | None = None,
    status: str | None = None,
    label: str | None = None,
    date: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: str | None = None,
) -> dict[str, Any]:
    filters = {
        "object_ref": f"{settings.upload_bucket}/{key}" if key else None,
        "status": status,
        "label": label,
        "day": date,
    }
    chosen = {k: v for k, v in filters.items() if v}
    if len(chosen) > 1:
        raise BadRequestError("use one of key, status, label or date")
    attribute, value = next(iter(chosen.items()), ("day", dt.datetime.now(dt.UTC).date().isoformat()))
    return results.query(attribute, value, limit, next_token)


@app.post("/uploads")
def create_upload(request: UploadRequest) -> dict[str, Any]:
    key = f"{settings.upload_prefix}{uuid.uuid4().hex}{EXTENSIONS[request.content_type]}"
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": settings.upload_bucket, "Key": key, "ContentType": request.content_type},
        ExpiresIn=settings.presign_expiry_seconds,
    )
    return {
        "upload_url": url,
        "key": key,
        "expires_in": settings.presign_expiry_seconds,
        "headers": {"Content-Type": request.content_type},
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
