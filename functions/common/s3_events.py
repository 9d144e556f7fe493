"""Turn S3 notifications (direct, or wrapped in an SQS message body) into object references."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str
    event_time: str

    @property
    def result_id(self) -> str:
        """One result per object version: a stable id that does not reveal the key."""
        version = self.version_id or self.etag or ""
        return hashlib.sha256(f"{self.bucket}\0{self.key}\0{version}".encode()).hexdigest()[:32]

    @property
    def object_ref(self) -> str:
        """Bucket and key, for finding every version's result by key (stored, never logged)."""
        return f"{self.bucket}/{self.key}"


def is_test_event(body: dict[str, Any]) -> bool:
    """S3 sends ``{"Event": "s3:TestEvent", ...}`` once when a notification is configured."""
    return body.get("Event") == "s3:TestEvent"


def refs_from_s3_event(event: dict[str, Any]) -> list[ObjectRef]:
    """Object-created records of an S3 event; keys arrive URL-encoded ('+' for space, %2B for '+')."""
    refs = []
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        refs.append(
            ObjectRef(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(obj["key"]),
                version_id=obj.get("versionId"),
                etag=obj.get("eTag"),
                size=obj.get("size"),
                sequencer=str(obj.get("sequencer", "")),
                event_time=str(record.get("eventTime", "")),
            )
        )
    return refs


def parse_sqs_body(body: str) -> list[ObjectRef]:
    """The S3 event inside an SQS message body; a test event yields no object."""
    document = json.loads(body)
    if is_test_event(document):
        return []
    return refs_from_s3_event(document)


SEQUENCER_WIDTH = 32


def sequencer_key(sequencer: str) -> str:
    """A sequencer made comparable as a string: S3 says to right-pad the shorter one with zeros.

    Stored on the result so that DynamoDB's condition ``sequencer < :new`` keeps the newest event.
    """
    return sequencer.upper().ljust(SEQUENCER_WIDTH, "0")
