"""From S3 object references to stored, notified results: the batch Lambda's business logic."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.endpoint import EndpointClient, Verdict
from functions.common.errors import (
    ImageRejectedError,
    ObjectMissingError,
    ObjectTooLargeError,
    RejectedObjectError,
    TransientError,
)
from functions.common.notify import Notifier
from functions.common.ownership import scope_of_key
from functions.common.results import CLASSIFIED, FAILED, REJECTED, ResultsStore, now_iso
from functions.common.s3_events import ObjectRef, sequencer_key
from model.errors import InvalidImageError
from model.preprocessing import downsize_png

logger = logging.getLogger(__name__)

Decision = Verdict | RejectedObjectError | TransientError
READ_CONCURRENCY = 8
_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})


@dataclass(frozen=True)
class Outcome:
    result_id: str
    status: str  # classified | rejected | duplicate
    label: str | None = None


def result_item(ref: ObjectRef, status: str, owner: str, source: str = "s3", **fields: Any) -> dict[str, Any]:
    created = now_iso()
    return {
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
        **fields,
    }


class ClassificationPipeline:
    def __init__(
        self,
        s3: Any,
        endpoint: EndpointClient,
        store: ResultsStore,
        notifier: Notifier,
        max_object_bytes: int,
        max_side: int = 512,
        upload_prefix: str = "",
    ) -> None:
        self._s3 = s3
        self.endpoint = endpoint
        self.store = store
        self._notifier = notifier
        self._max_object_bytes = max_object_bytes
        self._max_side = max_side
        self._upload_prefix = upload_prefix

    def owner_of(self, ref: ObjectRef) -> str:
        """The scope an object's result belongs to, from its key alone (see functions.common.ownership)."""
        return scope_of_key(ref.key, self._upload_prefix)

    def read_image(self, ref: ObjectRef) -> bytes:
        """Fetch, validate and downsize one object; RejectedObjectError if it can never be classified."""
        if ref.size is not None and ref.size > self._max_object_bytes:
            raise ObjectTooLargeError(f"{ref.size} bytes; the limit is {self._max_object_bytes}")
        kwargs = {
            "Bucket": ref.bucket,
            "Key": ref.key,
            **({"VersionId": ref.version_id} if ref.version_id else {}),
        }
        try:
            obj = self._s3.get_object(**kwargs)
            if obj["ContentLength"] > self._max_object_bytes:
                raise ObjectTooLargeError(f"{obj['ContentLength']} bytes; the limit is {self._max_object_bytes}")
            data = obj["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _MISSING:
                raise ObjectMissingError("the object was deleted before it was classified") from exc
            raise TransientError(f"S3 get_object failed: {exc.response['Error']['Code']}") from exc
        except BotoCoreError as exc:
            # Timeouts and connection errors: their own message holds the URL, and so the object key.
            raise TransientError(f"S3 get_object failed: {type(exc).__name__}") from exc
        try:
            return downsize_png(data, self._max_side)
        except InvalidImageError as exc:
            raise ImageRejectedError(exc.reason, str(exc)) from exc

    def _read_or_error(self, ref: ObjectRef) -> bytes | RejectedObjectError | TransientError:
        try:
            return self.read_image(ref)
        except (RejectedObjectError, TransientError) as exc:
            return exc

    def decide(self, refs: Sequence[ObjectRef]) -> dict[str, Decision]:
        """A decision per distinct object version, with one batched endpoint call for all images.

        Objects are fetched and downsized concurrently: S3 GETs wait on the network, and Pillow
        releases the GIL while it decodes.
        """
        unique = list({ref.result_id: ref for ref in refs}.values())
        with ThreadPoolExecutor(max_workers=min(READ_CONCURRENCY, max(1, len(unique)))) as pool:
            read = dict(zip((r.result_id for r in unique), pool.map(self._read_or_error, unique), strict=True))
        decisions: dict[str, Decision] = {k: v for k, v in read.items() if not isinstance(v, bytes)}
        prepared = {k: v for k, v in read.items() if isinstance(v, bytes)}
        if prepared:
            try:
                verdicts: list[Decision] = list(self.endpoint.classify(list(prepared.values())))
            except (TransientError, ImageRejectedError) as exc:
                verdicts = [exc] * len(prepared)
            decisions.update(zip(prepared, verdicts, strict=True))
        return decisions

    def finalize(
        self, ref: ObjectRef, decision: Verdict | RejectedObjectError, source: str = "s3", owner: str | None = None
    ) -> Outcome:
        """Store the final result and notify, unless an equal or newer one is already stored.

        ``owner`` defaults to the scope the object key gives (``owner_of``).
        """
        owner = owner or self.owner_of(ref)
        if isinstance(decision, Verdict) and decision.rejection is None:
            item = result_item(
                ref,
                CLASSIFIED,
                owner,
                source,
                label=decision.label,
                probabilities=decision.probabilities,
                model_name=decision.model.get("name"),
                model_version=decision.model.get("version"),
            )
        else:
            error = decision.rejection if isinstance(decision, Verdict) else decision
            model_version = decision.model.get("version") if isinstance(decision, Verdict) else None
            item = result_item(
                ref,
                REJECTED,
                owner,
                source,
                reason=getattr(error, "reason", "rejected"),
                model_version=model_version,
            )
        if not self.store.put_final(item):
            logger.info("duplicate or older event ignored", extra={"result_id": ref.result_id})
            return Outcome(ref.result_id, "duplicate")
        self._notifier.publish(item)
        return Outcome(ref.result_id, item["status"], item.get("label"))

    def record_failure(self, ref: ObjectRef, error: Exception) -> None:
        """Last attempt failed: record `failed` (the message then goes to the dead-letter queue)."""
        item = result_item(ref, FAILED, self.owner_of(ref), reason=type(error).__name__)
        if self.store.put_failed(item):
            self._notifier.publish(item)
