"""The batch path's ports: what the pipeline needs from the world, as small Protocols.

``ClassificationPipeline`` depends only on these; the AWS adapters (``S3Objects``, ``EndpointClient``,
``ResultsStore``, ``Notifier``) implement them, and unit tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from functions.common.deadline import Deadline
from functions.common.endpoint import Verdict
from functions.common.errors import TransientError
from functions.common.result import Result, Status
from functions.common.s3_events import ObjectRef


@dataclass(frozen=True)
class FetchedObject:
    data: bytes
    file_name: str | None = None  # the name the web client uploaded it under (the form's metadata)


class ObjectSource(Protocol):
    def fetch(self, ref: ObjectRef, max_bytes: int) -> FetchedObject:
        """The object; ObjectMissingError, ObjectTooLargeError or TransientError otherwise."""


class Classifier(Protocol):
    def classify(
        self, images: Sequence[bytes], deadline: Deadline | None = None, explain: bool = False
    ) -> list[Verdict | TransientError]:
        """One verdict per image, in order, or the transient error that kept it from one; with
        ``explain``, each prediction carries its heatmap."""


class ExplanationSink(Protocol):
    def put(self, result_id: str, preview: bytes, heatmap: bytes) -> None:
        """Store a result's preview and heatmap PNGs; TransientError if it cannot."""


class ReportSink(Protocol):
    def put_report(self, result_id: str, report: bytes) -> None:
        """Store a result's DICOM Structured Report; TransientError if it cannot."""


class ResultStore(Protocol):
    def put_final(self, item: Result) -> bool: ...

    def put_failed(self, item: Result) -> bool: ...

    def get_or_none(self, result_id: str) -> Result | None: ...

    def claim_upload(self, object_ref: str, result_id: str) -> bool:
        """Whether this object version is the one its upload form was used for (first one claimed)."""

    def claim_notification(self, result_id: str, status: Status, lease_s: int) -> str:
        """``claimed``, ``notified`` (already sent) or ``busy`` (another delivery is sending it)."""

    def mark_notified(self, result_id: str, status: Status) -> None: ...

    def release_notification(self, result_id: str, status: Status) -> None: ...


class Publisher(Protocol):
    def publish(self, result: Result) -> None: ...
