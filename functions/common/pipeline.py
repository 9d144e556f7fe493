"""From S3 object references to stored, notified results: the batch path's rules, in one place.

``ClassificationPipeline.process`` takes the objects of one invocation and returns one ``Outcome`` per
object; nothing one object does can fail another. The rules:

- An object that can never be classified is a ``rejected`` result with its reason.
- A transient problem (throttling, 5xx, timeouts, an endpoint breaking its contract, too little time
  left, a decode past its wall-clock bound, or any error nobody foresaw) is retried by the queue; on
  the last receive the object gets a ``failed`` result and its message goes to the dead-letter queue.
- Idempotency is the results table's: a final result is written only once per object version (and
  never over a newer version's), and every stored status is notified exactly once (stored first,
  then a claimed, published, marked notification; a redelivery republishes what was not marked).

It talks to the world only through the ports in ``functions.common.ports``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from functions.common.aws_errors import S3_GET, aws_errors
from functions.common.budget import ByteBudget
from functions.common.deadline import SETTLE_S, Deadline, NoDeadline
from functions.common.endpoint import Verdict
from functions.common.errors import (
    DeadlineError,
    DecodeTimeoutError,
    ImageRejectedError,
    ObjectTooLargeError,
    RejectedObjectError,
    TransientError,
    UnexpectedError,
    UploadReusedError,
)
from functions.common.ownership import SHARED, scope_of_key
from functions.common.ports import (
    Classifier,
    ExplanationSink,
    FetchedObject,
    ObjectSource,
    Publisher,
    ReportSink,
    ResultStore,
)
from functions.common.result import (
    CLASSIFIED,
    FAILED,
    FILE_NAME_METADATA,
    REJECTED,
    Result,
    Source,
    clean_file_name,
    new_result,
)
from functions.common.results import BUSY, CLAIMED
from functions.common.s3_events import ObjectRef
from functions.common.structured_report import fileable, structured_report
from model.core import dicom
from model.core.decoding import MAX_DECODED_BYTES, decode_cost
from model.core.downsize import downsize_png
from model.core.errors import InvalidImageError

logger = logging.getLogger(__name__)

Decision = Verdict | RejectedObjectError | TransientError
READ_THREADS = 8
# A decode's peak is at most about twice its decoded pixels (tests/unit/functions/test_decode_memory.py).
DECODE_BUDGET_BYTES = 2 * MAX_DECODED_BYTES
# One object's decode, from its start to its downsized PNG: the markers and caps bound it to about
# 3 s on one core (docs/decoding.md); past this its batch neighbours settle without it and it retries.
DECODE_TIMEOUT_S = 20.0
Downsize = Callable[[bytes, int, int], bytes]


@dataclass(frozen=True)
class Outcome:
    result_id: str
    status: str  # classified | rejected | failed | duplicate | retry
    reason: str | None = None
    gate_score: float | None = None  # for functions.common.drift: the gate's score of this image
    p_covid: float | None = None

    @property
    def retry(self) -> bool:
        """The message must come back (or, after its last receive, go to the dead-letter queue)."""
        return self.status in ("retry", FAILED)


def with_preview(verdict: Verdict, image: bytes) -> Verdict:
    """A prediction with the downsized image it was made on (what the heatmap is aligned with)."""
    return verdict if verdict.rejection is not None else dataclasses.replace(verdict, preview=image)


class S3Objects:
    """The bucket as the pipeline's ``ObjectSource``."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def fetch(self, ref: ObjectRef, max_bytes: int) -> FetchedObject:
        kwargs = {"Bucket": ref.bucket, "Key": ref.key, **({"VersionId": ref.version_id} if ref.version_id else {})}
        with aws_errors("S3 get_object", S3_GET):
            obj = self._s3.get_object(**kwargs)
            if obj["ContentLength"] > max_bytes:
                raise ObjectTooLargeError(f"{obj['ContentLength']} bytes; the limit is {max_bytes}")
            name = (obj.get("Metadata") or {}).get(FILE_NAME_METADATA)
            return FetchedObject(bytes(obj["Body"].read()), unquote(name) if name else None)


class ClassificationPipeline:
    def __init__(
        self,
        objects: ObjectSource,
        endpoint: Classifier,
        store: ResultStore,
        notifier: Publisher,
        max_object_bytes: int,
        max_side: int = 512,
        upload_prefix: str = "",
        max_receive_count: int = 5,
        decode_budget: ByteBudget | None = None,
        notify_lease_s: int = 60,
        explanations: ExplanationSink | None = None,
        reports: ReportSink | None = None,
        decode_timeout_s: float = DECODE_TIMEOUT_S,
        downsize: Downsize = downsize_png,
    ) -> None:
        self.objects = objects
        self.endpoint = endpoint
        self.store = store
        self.notifier = notifier
        self.max_object_bytes = max_object_bytes
        self._max_side = max_side
        self._upload_prefix = upload_prefix
        self._max_receive_count = max_receive_count
        self.decode_budget = decode_budget or ByteBudget(DECODE_BUDGET_BYTES)
        self._notify_lease_s = notify_lease_s
        self.explanations = explanations
        self.reports = reports
        # The header of each DICOM read in this batch, until its result is settled (its SR needs it).
        self._headers: dict[str, Any] = {}
        self._studies: dict[str, dict[str, str]] = {}
        self._names: dict[str, str] = {}
        self._decode_timeout_s = decode_timeout_s
        self._downsize = downsize
        # Long-lived, so that a decode given up on keeps its thread (and its budget) until it ends,
        # instead of blocking the invocation that gave up on it.
        self._decoders = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="decode")

    def owner_of(self, ref: ObjectRef) -> str:
        """The scope an object's result belongs to, from its key alone (see functions.common.ownership)."""
        return scope_of_key(ref.key, self._upload_prefix)

    # -- preparing images ---------------------------------------------------------------------------
    def _decode(self, data: bytes) -> bytes:
        try:
            cost = decode_cost(data, self.max_object_bytes)
            with self.decode_budget.hold(cost):
                return self._downsize(data, self._max_side, self.max_object_bytes)
        except InvalidImageError as exc:
            raise ImageRejectedError(exc.reason, str(exc)) from exc

    def prepare(self, data: bytes) -> bytes:
        """Validate and downsize one image within the decode byte budget and its wall-clock bound."""
        future = self._decoders.submit(self._decode, data)
        try:
            return future.result(timeout=self._decode_timeout_s)
        except FutureTimeoutError as exc:
            raise DecodeTimeoutError(f"decoding took longer than {self._decode_timeout_s:g} s") from exc

    def read_image(self, ref: ObjectRef) -> bytes:
        """Fetch, validate and downsize one object; RejectedObjectError if it can never be classified."""
        if ref.size is not None and ref.size > self.max_object_bytes:
            raise ObjectTooLargeError(f"{ref.size} bytes; the limit is {self.max_object_bytes}")
        fetched = self.objects.fetch(ref, self.max_object_bytes)
        data = fetched.data
        name = clean_file_name(fetched.file_name)
        if name:
            self._names[ref.result_id] = name
        if dicom.is_dicom(data):
            header = dicom.read_header(data)
            if header is not None:
                self._studies[ref.result_id] = dicom.study_facts(header)
                if self.reports is not None:
                    self._headers[ref.result_id] = header
        return self.prepare(data)

    def _read_or_error(self, ref: ObjectRef) -> bytes | RejectedObjectError | TransientError:
        try:
            return self.read_image(ref)
        except (RejectedObjectError, TransientError) as exc:
            return exc
        except Exception as exc:  # one object's surprise is that object's retry, never its neighbours' failure
            logger.exception("unexpected error reading an object", extra={"result_id": ref.result_id})
            return UnexpectedError(f"unexpected {type(exc).__name__} while reading")

    def _reused_forms(self, refs: Sequence[ObjectRef]) -> dict[str, Decision]:
        """A user's upload key is its form's alone: only its first version is read and classified
        (see functions.common.limits). Claimed here, before the concurrent reads: the store's table
        resource is not shared across threads."""
        reused: dict[str, Decision] = {}
        for ref in refs:
            if self.owner_of(ref) == SHARED:
                continue
            try:
                with aws_errors("claiming the upload"):
                    if not self.store.claim_upload(ref.object_ref, ref.result_id):
                        reused[ref.result_id] = UploadReusedError("this upload form was already used for another image")
            except TransientError as exc:
                reused[ref.result_id] = exc
            except Exception as exc:  # the claim is this object's transient problem, never its neighbours'
                logger.exception("could not claim an upload", extra={"result_id": ref.result_id})
                reused[ref.result_id] = UnexpectedError(f"unexpected {type(exc).__name__} claiming the upload")
        return reused

    def decide(self, refs: Sequence[ObjectRef], deadline: Deadline | None = None) -> dict[str, Decision]:
        """A decision per distinct object version, with one batched endpoint call for all images.

        Objects are fetched and downsized concurrently: S3 GETs wait on the network, and Pillow
        releases the GIL while it decodes; the byte budget keeps large decodes from piling up.
        """
        unique = list({ref.result_id: ref for ref in refs}.values())
        self._headers.clear()  # a header left by an object whose result was not settled (it retries)
        self._studies.clear()
        self._names.clear()
        reused = self._reused_forms(unique)
        unique = [ref for ref in unique if ref.result_id not in reused]
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, max(1, len(unique)))) as pool:
            read = dict(zip((r.result_id for r in unique), pool.map(self._read_or_error, unique), strict=True))
        decisions: dict[str, Decision] = {k: v for k, v in read.items() if not isinstance(v, bytes)}
        decisions.update(reused)
        prepared = {k: v for k, v in read.items() if isinstance(v, bytes)}
        if prepared:
            explain = self.explanations is not None
            try:
                verdicts: list[Decision] = list(self.endpoint.classify(list(prepared.values()), deadline, explain))
            except Exception as exc:  # the endpoint client maps what it knows; anything else is transient
                logger.exception("unexpected error calling the endpoint")
                verdicts = [UnexpectedError(f"unexpected {type(exc).__name__} from the endpoint")] * len(prepared)
            for (result_id, image), verdict in zip(prepared.items(), verdicts, strict=True):
                decisions[result_id] = (
                    with_preview(verdict, image) if explain and isinstance(verdict, Verdict) else verdict
                )
        return decisions

    # -- settling results ---------------------------------------------------------------------------
    def _notify_once(self, item: Result) -> None:
        state = self.store.claim_notification(item["result_id"], item["status"], self._notify_lease_s)
        if state == BUSY:
            raise TransientError("another delivery is sending this notification")
        if state != CLAIMED:
            return
        try:
            self.notifier.publish(item)
        except Exception as exc:
            self.store.release_notification(item["result_id"], item["status"])
            raise TransientError(f"publishing the notification failed: {type(exc).__name__}") from exc
        self.store.mark_notified(item["result_id"], item["status"])

    def _store_explanation(self, result_id: str, verdict: Verdict) -> bool:
        """Write the preview and heatmap before the result that points at them."""
        if self.explanations is None or verdict.preview is None or verdict.heatmap is None:
            return False
        self.explanations.put(result_id, verdict.preview, verdict.heatmap)
        return True

    def _store_report(self, result_id: str, item: Result) -> None:
        """The result as a DICOM SR, written before the result that says it exists, where the image came
        as a DICOM a PACS can file a report beside."""
        header = self._headers.pop(result_id, None)
        if self.reports is None or header is None or not fileable(header):
            return
        try:
            report = structured_report(header, item)
        except (ValueError, AttributeError, TypeError) as exc:
            logger.warning("no structured report for this result", extra={"error": type(exc).__name__})
            return
        self.reports.put_report(result_id, report)
        item["structured_report"] = True

    def finalize(
        self,
        ref: ObjectRef,
        decision: Verdict | RejectedObjectError,
        source: Source = "s3",
        owner: str | None = None,
        file_name: str | None = None,
        study: dict[str, str] | None = None,
    ) -> Outcome:
        """Store the final result, unless an equal or newer one is, and make sure it was notified.

        ``owner`` defaults to the scope the object key gives (``owner_of``). ``file_name`` (for its owner's
        eyes only) and ``study`` (``dicom.study_facts``; read here for an object of the batch path) are
        kept with the result.
        """
        owner = owner or self.owner_of(ref)
        study = study or self._studies.pop(ref.result_id, None)
        file_name = file_name or self._names.pop(ref.result_id, None)
        if isinstance(decision, Verdict) and decision.rejection is None:
            explained = self._store_explanation(ref.result_id, decision)
            item = new_result(
                ref,
                CLASSIFIED,
                owner,
                source,
                label=decision.label,
                probabilities=decision.probabilities,
                gate=decision.gate,
                confidence=decision.confidence,
                explanation=explained or None,
                model_name=decision.model.get("name"),
                model_version=decision.model.get("version"),
                covid_threshold=decision.model.get("covid_threshold"),  # the operating point that decided
                site_validation=decision.model.get("site_validation") or "none",
            )
        else:
            error = decision.rejection if isinstance(decision, Verdict) else decision
            verdict = decision if isinstance(decision, Verdict) else None
            item = new_result(
                ref,
                REJECTED,
                owner,
                source,
                reason=getattr(error, "reason", "rejected"),
                gate=verdict.gate if verdict else None,
                model_version=verdict.model.get("version") if verdict else None,
            )
        if file_name:
            item["file_name"] = file_name
        if study:
            item["study"] = study
        self._store_report(ref.result_id, item)
        if self.store.put_final(item):
            self._notify_once(item)
            gate = item.get("gate")
            return Outcome(
                ref.result_id,
                item["status"],
                item.get("reason"),
                gate_score=gate["score"] if gate else None,
                p_covid=(item.get("probabilities") or {}).get("covid"),
            )
        stored = self.store.get_or_none(ref.result_id)
        if stored is not None and stored["status"] != FAILED:
            self._notify_once(stored)  # a delivery that stored it may have died before notifying
        logger.info("duplicate or older event", extra={"result_id": ref.result_id})
        return Outcome(ref.result_id, "duplicate")

    def record_failure(self, ref: ObjectRef, reason: str) -> Outcome:
        """The last attempt failed: record `failed` unless a result exists, and make sure whatever is
        stored was notified (the message goes to the dead-letter queue)."""
        item = new_result(ref, FAILED, self.owner_of(ref), reason=reason)
        if not self.store.put_failed(item):
            item = self.store.get_or_none(ref.result_id) or item
        self._notify_once(item)
        return Outcome(ref.result_id, item["status"] if item["status"] == FAILED else "duplicate", reason=reason)

    def settle(self, ref: ObjectRef, decision: Decision, receive_count: int, deadline: Deadline) -> Outcome:
        """One object's outcome from its decision; never raises."""
        try:
            if isinstance(decision, TransientError):
                raise decision
            if deadline.remaining_s() < SETTLE_S:
                raise DeadlineError("too little time left to store the result")
            return self.finalize(ref, decision)
        except Exception as exc:
            error = exc if isinstance(exc, TransientError) else UnexpectedError(type(exc).__name__)
            if not isinstance(exc, TransientError):
                logger.exception("unexpected error settling an object", extra={"result_id": ref.result_id})
            if receive_count < self._max_receive_count:
                return Outcome(ref.result_id, "retry", reason=type(error).__name__)
            try:
                return self.record_failure(ref, type(error).__name__)
            except Exception:
                logger.exception("could not record the failure; the dead-letter function will")
                return Outcome(ref.result_id, FAILED, reason=type(error).__name__)

    def process(
        self, deliveries: Sequence[tuple[ObjectRef, int]], deadline: Deadline | None = None
    ) -> dict[str, Outcome]:
        """One outcome per object version of an invocation: ``(ref, receive count)`` pairs in."""
        deadline = deadline or NoDeadline()
        counts: dict[str, int] = {}
        refs: dict[str, ObjectRef] = {}
        for ref, count in deliveries:
            counts[ref.result_id] = max(count, counts.get(ref.result_id, 0))
            refs[ref.result_id] = ref
        decisions = self.decide(list(refs.values()), deadline)
        return {rid: self.settle(refs[rid], decisions[rid], counts[rid], deadline) for rid in refs}

    def classify_one(self, image: bytes, deadline: Deadline | None = None, explain: bool = False) -> Verdict:
        """The API's single image: the same validation, downsizing and endpoint as the batch path;
        with ``explain``, the verdict carries its heatmap and the preview."""
        prepared = self.prepare(image)
        (verdict,) = self.endpoint.classify([prepared], deadline, explain)
        if isinstance(verdict, TransientError):
            raise verdict
        if verdict.rejection is not None:
            raise verdict.rejection
        return with_preview(verdict, prepared) if explain else verdict
