"""API Lambda (API Gateway REST, Cognito-authorised): classify one image, read results, get upload forms.

Every route acts for the signed-in caller (the Cognito ID token's ``sub``); see
``functions.common.ownership`` for who reads what.

POST /classify          raw image body (image/png | image/jpeg | application/dicom), <= SYNC_MAX_IMAGE_BYTES;
                        ?store=true keeps the result, owned by the caller; ?explain=true adds the downsized
                        image (preview) and the label's heatmap, both base64 PNGs of the same aspect
GET  /results/{id}      one result the caller may read (404 for any other, as for a missing one), with
                        presigned GET URLs of its preview and heatmap when it has them
GET  /results           the caller's results, plus the shared ones for readers and admins, newest first:
                        at most one of ?key= | ?status= | ?label= | ?date=YYYY-MM-DD; &limit=&next_token=
                        (?key= lists every version of the object, newest first, the current one marked)
POST /uploads           {"content_type": "image/png"} -> a presigned POST form for a key of the caller's own
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from functools import cache
from typing import Annotated, Any
from urllib.parse import quote

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api.schema import (
    Classification,
    ErrorBody,
    ResultPage,
    StoredResult,
    UploadForm,
    UploadRequest,
    answer,
    json_response,
)
from functions.common import clients, telemetry
from functions.common.config import ApiSettings, Settings
from functions.common.deadline import ContextDeadline
from functions.common.errors import (
    ApiError,
    BadRequestError,
    BodyTooLargeError,
    DecodeTimeoutError,
    ImageRejectedError,
    LimitExceededError,
    ObjectMissingError,
    ResultNotFoundError,
    TransientError,
)
from functions.common.limits import REQUESTS, UPLOADS, TableLimiter, Window
from functions.common.ownership import AccessGroups, Caller, upload_key, visible_result
from functions.common.page_token import PageTokens
from functions.common.reasons import DECODE_TIMEOUT, ENDPOINT_UNAVAILABLE, RATE_LIMITED
from functions.common.result import FILE_NAME_METADATA, MAX_FILE_NAME, STATUSES, clean_file_name
from functions.common.s3_events import ObjectRef
from model.core import dicom
from model.core.errors import InvalidImageError
from model.core.labels import ALL_LABELS

logger = telemetry.logger()
tracer = telemetry.tracer()
metrics = Metrics()
settings = Settings.from_env()
api_settings = ApiSettings.from_env()
results = clients.results_store(settings)
# One endpoint attempt: API Gateway gives up after 29 s; a failure is a 503 with Retry-After. A decode
# gets 10 s of the 29 (one of at most 4 MiB takes under 3 s: docs/decoding.md).
API_DECODE_TIMEOUT_S = 10.0
pipeline = clients.classification_pipeline(
    settings, endpoint_attempts=1, store=results, decode_timeout_s=API_DECODE_TIMEOUT_S
)
s3 = clients.s3()
explanations = clients.explanations(settings, api_settings.presign_expiry_seconds)
groups = AccessGroups(readers=api_settings.readers_group, admins=api_settings.admins_group)
limiter = TableLimiter(clients.dynamodb_table(settings.results_table))
REQUEST_WINDOW = Window(REQUESTS, api_settings.requests_per_user_per_minute, 60)
UPLOAD_WINDOW = Window(UPLOADS, api_settings.uploads_per_user_per_hour, 3600)
app = APIGatewayRestResolver(
    enable_validation=True, cors=CORSConfig(allow_origin=api_settings.allowed_origin, max_age=300)
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RETRY_AFTER_S = "5"


# What every route may answer besides its 200: ErrorBody, with the reasons of docs/api.md.
ERRORS: dict[int, OpenAPIResponse] = {
    status: json_response(ErrorBody, why)
    for status, why in {
        400: "a bad request or parameter",
        404: "no such result the caller may read",
        413: "the body is over the limit",
        415: "not an image the API takes",
        422: "an image refused (a rejection reason) or a body that does not validate",
        429: "over the caller's request or upload limit (Retry-After)",
        503: "the model endpoint is busy or a decode ran out of time (Retry-After)",
    }.items()
}


@cache
def page_tokens() -> PageTokens:
    """The listing's page tokens, keyed by the secret read once per container, at the first listing."""
    return PageTokens(clients.secret_bytes(api_settings.page_token_secret_arn))


# -- errors -> HTTP: the one place ------------------------------------------------------------------
def _error(status: int, reason: str, message: str, **extra: Any) -> Response[Any]:
    body = answer(ErrorBody, {"error": {"reason": reason, "message": message, **extra}})
    return Response(status_code=status, content_type="application/json", body=body)


@app.exception_handler([ApiError, ResultNotFoundError])
def api_error(exc: ApiError | ResultNotFoundError) -> Response[Any]:
    return _error(exc.http_status, type(exc).__name__, str(exc))


@app.exception_handler(InvalidImageError)
def invalid_image(exc: InvalidImageError) -> Response[Any]:
    return _error(exc.http_status, exc.reason, str(exc))


@app.exception_handler(ImageRejectedError)
def rejected_image(exc: ImageRejectedError) -> Response[Any]:
    return _error(exc.http_status, exc.reason, str(exc), **({"gate": exc.gate} if exc.gate is not None else {}))


@app.exception_handler(TransientError)
def endpoint_unavailable(exc: TransientError) -> Response[Any]:
    response = _error(exc.http_status, ENDPOINT_UNAVAILABLE, "the model endpoint is busy or unavailable; retry later")
    response.headers["Retry-After"] = RETRY_AFTER_S
    return response


@app.exception_handler(LimitExceededError)
def limit_exceeded(exc: LimitExceededError) -> Response[Any]:
    response = _error(exc.http_status, RATE_LIMITED, str(exc))
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


@app.exception_handler(DecodeTimeoutError)
def decode_timeout(exc: DecodeTimeoutError) -> Response[Any]:
    response = _error(exc.http_status, DECODE_TIMEOUT, f"{exc}; retry later, or upload it through POST /uploads")
    response.headers["Retry-After"] = RETRY_AFTER_S
    return response


def internal_error() -> dict[str, Any]:
    """What an unexpected exception becomes: a 500 the client can read, never a 502 and a raw traceback."""
    return {
        "statusCode": 500,
        "headers": {"Content-Type": "application/json", "Access-Control-Allow-Origin": api_settings.allowed_origin},
        "body": json.dumps({"error": {"reason": "internal_error", "message": "internal error; retry later"}}),
        "isBase64Encoded": False,
    }


# -- the caller and the request ---------------------------------------------------------------------
def current_caller() -> Caller:
    """The signed-in caller, counted against its per-user request limit (every route calls this once)."""
    event = app.current_event
    token = event.get_header_value("Authorization", case_sensitive=False)
    caller = Caller.from_claims(event.request_context.authorizer.claims, groups, token)
    limiter.take(caller.sub, REQUEST_WINDOW)
    return caller


def _body_bytes() -> bytes:
    event = app.current_event
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(event.body, validate=True)
        except binascii.Error as exc:
            raise BadRequestError("the body is not valid base64") from exc
    try:
        # A non-binary content type reaches the function as text; only Latin-1 text maps back to bytes.
        return event.body.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            "the body is text, not an image: send the image bytes with Content-Type image/png, image/jpeg "
            "or application/dicom"
        ) from exc


def _listing_filter(
    key: str | None, status: str | None, label: str | None, date: str | None
) -> tuple[str | None, str | None]:
    chosen = {
        name: value
        for name, value in {"object_ref": key, "status": status, "label": label, "day": date}.items()
        if value
    }
    if len(chosen) > 1:
        raise BadRequestError("use at most one of key, status, label or date")
    if not chosen:
        return None, None
    ((attribute, value),) = chosen.items()
    if attribute == "status" and value not in STATUSES:
        raise BadRequestError(f"status is one of {', '.join(STATUSES)}")
    if attribute == "label" and value not in ALL_LABELS:
        raise BadRequestError(f"label is one of {', '.join(ALL_LABELS)}")
    if attribute == "day" and not _DATE.match(value):
        raise BadRequestError("date is YYYY-MM-DD")
    if attribute == "object_ref":
        if len(value) > 1024:
            raise BadRequestError("key is at most 1024 characters")
        value = f"{settings.upload_bucket}/{value}"
    return attribute, value


# -- routes -----------------------------------------------------------------------------------------
@app.post("/classify", responses={200: json_response(Classification, "the answer"), **ERRORS})
@tracer.capture_method(capture_response=False)
def classify(store: bool = False, explain: bool = False, name: str | None = None) -> dict[str, Any]:
    caller = current_caller()
    # Checked here: Annotated Query limits do not resolve through the tracer's wrapper.
    if name is not None and len(name) > MAX_FILE_NAME:
        raise BadRequestError(f"name is at most {MAX_FILE_NAME} characters")
    image = _body_bytes()
    if len(image) > api_settings.sync_max_image_bytes:
        raise BodyTooLargeError(
            f"{len(image)} bytes; POST /classify takes at most {api_settings.sync_max_image_bytes}: use POST /uploads"
        )
    if store:
        limiter.take(caller.sub, UPLOAD_WINDOW)
    # A stored result always gets its preview and heatmap, for the web client's history.
    verdict = pipeline.classify_one(image, ContextDeadline(app.lambda_context), explain=explain or store)
    metrics.add_metric(name="SyncClassified", unit=MetricUnit.Count, value=1)
    study = dicom.study_of(image)
    reply: dict[str, Any] = {
        "label": verdict.label,
        "probabilities": verdict.probabilities,
        "gate": verdict.gate,
        "confidence": verdict.confidence,
        "model": verdict.model,
    }
    if study:
        reply["study"] = study
    if explain and verdict.preview is not None and verdict.heatmap is not None:
        reply["explanation"] = {
            "preview": {"format": "png", "b64": base64.b64encode(verdict.preview).decode()},
            "heatmap": {"format": "png", "b64": base64.b64encode(verdict.heatmap).decode()},
        }
    if store:
        digest = hashlib.sha256(image).hexdigest()
        # The caller is part of the reference: the same image stored by two users is two results.
        ref = ObjectRef(
            "api", f"{caller.sub}/{digest}", None, digest, len(image), "", dt.datetime.now(dt.UTC).isoformat()
        )
        outcome = pipeline.finalize(
            ref, verdict, source="api", owner=caller.scope, file_name=clean_file_name(name), study=study
        )
        reply["result_id"] = ref.result_id
        # Results are keyed by caller and image: the same image again keeps its first result.
        reply["earlier"] = outcome.status == "duplicate"
    return answer(Classification, reply)


@app.get("/results/<result_id>", responses={200: json_response(StoredResult, "the result"), **ERRORS})
def get_result(result_id: str) -> dict[str, Any]:
    caller = current_caller()
    item = results.get(result_id)
    if not caller.may_read(item.get("owner")):
        raise ResultNotFoundError("no such result")
    view = visible_result(item, caller)
    if item.get("explanation"):
        view["explanation"] = explanations.urls(result_id)
    return answer(StoredResult, view)


@app.get("/results/<result_id>/sr")
def get_structured_report(result_id: str):  # type: ignore[no-untyped-def]
    """The result as a DICOM Structured Report (an image that came as DICOM), for a caller who may read
    the result; 404 otherwise, the same as for a result that does not exist. No return annotation on
    purpose: Powertools validates an annotated response as a model, which would decode the DICOM
    bytes as UTF-8; unannotated, a non-JSON response goes out as it is (base64, isBase64Encoded)."""
    caller = current_caller()
    item = results.get(result_id)
    if not caller.may_read(item.get("owner")) or not item.get("structured_report"):
        raise ResultNotFoundError("no structured report for this result")
    try:
        report = explanations.report(result_id)
    except ObjectMissingError as exc:  # its retention ended before the result's
        raise ResultNotFoundError("no structured report for this result") from exc
    return Response(
        status_code=200,
        content_type="application/dicom",
        body=report,
        headers={"Content-Disposition": f'attachment; filename="{result_id}-sr.dcm"'},
    )


@app.get("/results", responses={200: json_response(ResultPage, "a page of results"), **ERRORS})
def list_results(
    key: str | None = None,
    status: str | None = None,
    label: str | None = None,
    date: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
) -> dict[str, Any]:
    caller = current_caller()
    attribute, value = _listing_filter(key, status, label, date)
    # Readers see shared results but not their keys, so only admins may search shared ones by key.
    scopes = caller.key_scopes if attribute == "object_ref" else caller.readable_scopes
    query = [attribute or "", value or ""]
    positions = page_tokens().decode(next_token, caller.sub, query) if next_token else None
    items, after = results.list_scoped(scopes, attribute, value, limit, positions)
    views = [visible_result(item, caller) for item in items]
    if attribute == "object_ref" and views and positions is None:
        views[0]["current"] = True  # versions come newest first (by S3 sequencer)
    return answer(
        ResultPage, {"items": views, "next_token": page_tokens().encode(caller.sub, query, after) if after else None}
    )


@app.post("/uploads", responses={200: json_response(UploadForm, "the upload form"), **ERRORS})
def create_upload(request: UploadRequest) -> dict[str, Any]:
    caller = current_caller()
    limiter.take(caller.sub, UPLOAD_WINDOW)
    key = upload_key(settings.upload_prefix, caller.sub, request.content_type)
    fields: dict[str, str] = {"Content-Type": request.content_type}
    name = clean_file_name(request.file_name)
    if name:
        # Signed into the form like the content type: the object carries its name to the batch path.
        fields[f"x-amz-meta-{FILE_NAME_METADATA}"] = quote(name, safe="")
    form = s3.generate_presigned_post(
        Bucket=settings.upload_bucket,
        Key=key,
        Fields=fields,
        Conditions=[
            *({field: value} for field, value in fields.items()),
            ["content-length-range", 1, settings.max_object_bytes],
        ],
        ExpiresIn=api_settings.presign_expiry_seconds,
    )
    return answer(
        UploadForm,
        {
            "url": form["url"],
            "fields": form["fields"],
            "key": key,
            "expires_in": api_settings.presign_expiry_seconds,
            "max_bytes": settings.max_object_bytes,
        },
    )


# -- audit and entry point --------------------------------------------------------------------------
def audit_entry(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """One line per API call: who (Cognito sub), which route, which result, what came of it."""
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
    result_id = (event.get("pathParameters") or {}).get("result_id")
    status = int(response.get("statusCode", 500))
    reason = None
    try:
        body = json.loads(response.get("body") or "{}") if not response.get("isBase64Encoded") else {}
    except json.JSONDecodeError:
        body = {}
    if isinstance(body, dict):
        result_id = result_id or body.get("result_id")
        reason = (body.get("error") or {}).get("reason") if isinstance(body.get("error"), dict) else None
    return {
        "sub": claims.get("sub"),
        "route": f"{event.get('httpMethod')} {event.get('resource')}",
        "result_id": result_id,
        "status": status,
        "outcome": "ok" if status < 400 else (reason or "error"),
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        response: dict[str, Any] = app.resolve(event, context)
    except Exception:  # the last resort: a readable 500 and a redacted log line, never a 502
        logger.exception("unhandled error")
        response = internal_error()
    logger.info("audit", extra={"audit": audit_entry(event, response)})
    return response


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)  # type: ignore[no-any-return]
