"""What a result is: one item per uploaded object version, as the results table stores it, the API
shows it (``SHOWN_FIELDS``) and a notification carries it (``NOTIFIED_FIELDS``).

Written by the pipeline (``new_result``), stored and read by ``functions.common.results``, filtered by
``functions.common.ownership.visible_result`` and ``functions.common.notify``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final, Literal, Required, TypedDict, Unpack, cast, get_args

from functions.common.s3_events import ObjectRef, sequencer_key
from model.core.contract import Confidence, Gate

Status = Literal["classified", "rejected", "failed"]
CLASSIFIED: Final[Status] = "classified"
REJECTED: Final[Status] = "rejected"
FAILED: Final[Status] = "failed"  # retried until the dead-letter queue; a later final result replaces it
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
Source = Literal["s3", "api"]


class ResultFields(TypedDict, total=False):
    """What the outcome adds to the object's identity; absent fields are not stored."""

    label: str | None  # classified
    probabilities: dict[str, float]  # classified: calibrated, per label
    gate: Gate | None  # the input gate's score and threshold
    confidence: Confidence | None
    explanation: bool | None  # a preview and heatmap were stored (functions.common.explanations)
    structured_report: bool | None  # a DICOM SR was stored beside it (the image came as DICOM)
    reason: str | None  # rejected / failed: machine-readable
    model_name: str | None
    model_version: str | None
    covid_threshold: float | None  # the operating point that decided
    site_validation: str | None  # the site whose cross-validation stood behind the model, or "none"
    study: dict[str, str] | None  # a DICOM's study date, modality, view, body part (model.core.dicom.study_facts)
    file_name: str | None  # as the web client sent it: shown to the owner only, never notified or logged


class Result(ResultFields, total=False):
    pk: Required[str]  # = result_id
    result_id: Required[str]
    owner: Required[str]  # the scope that may read it (functions.common.ownership)
    object_ref: Required[str]  # bucket/key: never logged, never notified
    version_id: str | None
    etag: str | None
    status: Required[Status]
    sequencer: Required[str]  # S3's order of the object's versions (sortable)
    created_at: Required[str]
    day: Required[str]
    source: Required[Source]
    notified_at: str  # set once its notification was published
    notify_lease: int


# The longest file name kept with a result (POST /classify?name=, POST /uploads' file_name).
MAX_FILE_NAME: Final = 255

# The S3 user metadata (x-amz-meta-file-name) under which an upload form carries the file's name,
# percent-encoded: S3 metadata is ASCII.
FILE_NAME_METADATA: Final = "file-name"

# What a result shows a caller; the object key (and its version) only to who may see the key.
SHOWN_FIELDS: Final = (
    "result_id",
    "status",
    "label",
    "probabilities",
    "gate",
    "confidence",
    "reason",
    "model_name",
    "model_version",
    "covid_threshold",
    "site_validation",
    "structured_report",
    "study",
    "created_at",
    "source",
)
# What a notification carries: never the object key or anything else that could identify a patient.
NOTIFIED_FIELDS: Final = (
    "result_id",
    "status",
    "label",
    "probabilities",
    "reason",
    "model_version",
    "site_validation",
    "created_at",
    "source",
)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_result(
    ref: ObjectRef, status: Status, owner: str, source: Source = "s3", **fields: Unpack[ResultFields]
) -> Result:
    created = now_iso()
    identity: Result = {
        "pk": ref.result_id,
        "result_id": ref.result_id,
        "owner": owner,
        "object_ref": ref.object_ref,
        "version_id": ref.version_id,
        "etag": ref.etag,
        "status": status,
        "sequencer": sequencer_key(ref.sequencer),
        "created_at": created,
        "day": created[:10],
        "source": source,
    }
    # mypy cannot merge two TypedDicts with ``**``; both halves are checked above.
    return cast(Result, {**identity, **fields})


def public(result: Result | dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The ``fields`` of ``result`` that have a value."""
    return {k: result[k] for k in fields if result.get(k) is not None}  # type: ignore[literal-required]


def clean_file_name(sent: str | None) -> str | None:
    """The name the web client sent with an image, as its owner's history shows it: the last path part,
    without control characters; None when nothing is left."""
    if not sent:
        return None
    shown = "".join(c for c in re.split(r"[\\/]", sent)[-1] if c.isprintable()).strip()
    return shown or None
