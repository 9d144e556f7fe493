"""The API's request and response shapes, defined once.

The routes build their answers through these models (``answer``), Powertools documents them in the
OpenAPI document (``python -m tools.openapi`` writes ``docs/openapi.json``), and the web client's
types are generated from that document (``client/src/generated/api.ts``, openapi-typescript). The
shapes the model endpoint answers with (``model.core.contract``: gate, confidence, model) are the same
fields as the contract's TypedDicts, which ``tests/unit/functions/test_openapi.py`` holds them to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from functions.common.result import MAX_FILE_NAME, Source, Status

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

# A field that is either there with a value or not there at all: never null on the wire.
Absent = SkipJsonSchema[None]


class Shape(BaseModel):
    # A field the route sets that the schema lacks is a bug, not something to pass on silently.
    model_config = ConfigDict(extra="forbid")


class Gate(Shape):
    """The input gate's score and the threshold over which it refuses (null: a gate never fitted)."""

    score: float
    threshold: float | None


class Confidence(Shape):
    """How far an answer can be trusted: "low" with its reasons, or "normal"."""

    level: Literal["low", "normal"]
    reasons: list[str]
    validated_on: str | Absent = Field(default=None, description="the site whose own images validated the model")


class ModelInfo(Shape):
    """The model that answered (empty where no answer named one)."""

    name: str | Absent = None
    version: str | Absent = None
    task: str | Absent = None
    labels: list[str] | Absent = None
    covid_threshold: float | Absent = Field(default=None, description="the operating point, where one was chosen")
    site_validation: str | Absent = None


class Study(Shape):
    """What a result shows of a DICOM's study (``model.core.dicom.study_facts``)."""

    study_date: str | Absent = None
    modality: str | Absent = None
    view: str | Absent = None
    body_part: str | Absent = None


class Png(Shape):
    format: Literal["png"]
    b64: str


class Explanation(Shape):
    """The downsized image and the label's heatmap, both base64 PNGs of the same aspect."""

    preview: Png
    heatmap: Png


class Classification(Shape):
    """``POST /classify``'s answer."""

    label: str
    probabilities: dict[str, float]
    gate: Gate | None = None
    confidence: Confidence | None = None
    model: ModelInfo
    study: Study | Absent = None
    explanation: Explanation | Absent = None
    result_id: str | Absent = Field(default=None, description="with ?store=true: the stored result")
    earlier: bool | Absent = Field(
        default=None, description="with ?store=true: the same image had been stored before; its first result stands"
    )


class ExplanationUrls(Shape):
    """Presigned GET URLs of a stored result's preview and heatmap."""

    preview_url: str
    heatmap_url: str
    expires_in: int = Field(description="seconds the URLs stay valid")


class StoredResult(Shape):
    """A result as a caller sees it (``functions.common.ownership.visible_result``)."""

    result_id: str
    status: Status
    label: str | Absent = None
    probabilities: dict[str, float] | Absent = None
    gate: Gate | Absent = None
    confidence: Confidence | Absent = None
    reason: str | Absent = Field(default=None, description="rejected or failed: machine-readable (docs/api.md)")
    model_name: str | Absent = None
    model_version: str | Absent = None
    covid_threshold: float | Absent = None
    site_validation: str | Absent = None
    structured_report: bool | Absent = Field(default=None, description="a DICOM Structured Report exists (GET .../sr)")
    study: Study | Absent = None
    created_at: str
    source: Source | Absent = None
    scope: Literal["own", "shared"]
    file_name: str | Absent = Field(default=None, description="the name sent with the image: its owner only")
    key: str | Absent = Field(default=None, description="the object key: only where the caller may see it")
    version_id: str | Absent = None
    current: bool | Absent = Field(default=None, description="?key= listings: the object's current version")
    explanation: ExplanationUrls | Absent = None


class ResultPage(Shape):
    """``GET /results``: newest first; pass ``next_token`` back for the next page."""

    items: list[StoredResult]
    next_token: str | None


class UploadRequest(BaseModel):
    """``POST /uploads``' body. Other fields are ignored, not refused: a client cannot choose the key
    (or anything else) by sending it, and an older or newer client still gets its form."""

    model_config = ConfigDict(extra="ignore")

    content_type: Literal["image/png", "image/jpeg", "application/dicom"] = "image/png"
    file_name: str | None = Field(default=None, max_length=MAX_FILE_NAME)


class UploadForm(Shape):
    """A presigned S3 POST form for one upload of the caller's own."""

    url: str
    fields: dict[str, str]
    key: str
    expires_in: int
    max_bytes: int


class ErrorDetail(Shape):
    reason: str = Field(description="machine-readable (docs/api.md)")
    message: str
    gate: Gate | Absent = None


class ErrorBody(Shape):
    """Every answer that is not 2xx."""

    error: ErrorDetail


ShapeT = TypeVar("ShapeT", bound=Shape)


def answer(shape: type[ShapeT], fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` checked against ``shape`` and returned as JSON-ready data, with exactly the keys it
    was given (an explicit null stays, an absent field stays absent)."""
    return shape.model_validate(fields).model_dump(mode="json", exclude_unset=True)


def json_response(shape: type[Shape], description: str) -> OpenAPIResponse:
    """An OpenAPI response entry (Powertools' ``responses=``) whose JSON body is ``shape``."""
    return {"description": description, "content": {"application/json": {"model": shape}}}
