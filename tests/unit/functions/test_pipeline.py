"""The batch pipeline's rules, with in-memory objects, endpoint and notifier, and the real results store
on in-process moto DynamoDB (its conditional writes are the idempotency under test)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from functions.common.budget import ByteBudget
from functions.common.endpoint import Verdict
from functions.common.errors import EndpointUnavailableError, ObjectMissingError, TransientError
from functions.common.notify import Notifier
from functions.common.pipeline import ClassificationPipeline
from functions.common.ports import FetchedObject
from functions.common.results import ResultsStore
from functions.common.s3_events import ObjectRef
from model.core.downsize import downsize_png
from model.core.errors import DecompressionBombError
from tests import dicoms, images

MODEL = {"name": "m", "version": "v1", "task": "binary", "labels": ["covid", "no_findings"]}
HEATMAP = images.png(64, seed=99)


class FakeObjects:
    def __init__(self) -> None:
        self.data: dict[str, bytes | Exception] = {}
        self.fetched: list[str] = []
        self.names: dict[str, str] = {}

    def fetch(self, ref: ObjectRef, max_bytes: int) -> FetchedObject:
        self.fetched.append(ref.key)
        value = self.data.get(ref.key, ObjectMissingError("gone"))
        if isinstance(value, Exception):
            raise value
        return FetchedObject(value, self.names.get(ref.key))


class FakeEndpoint:
    """Answers covid for every image and records the batch sizes it was sent."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail: TransientError | None = None
        self.model: dict[str, Any] = MODEL

    def classify(
        self, batch: Sequence[bytes], deadline: Any = None, explain: bool = False
    ) -> list[Verdict | TransientError]:
        self.calls.append(len(batch))
        if self.fail is not None:
            return [self.fail] * len(batch)
        heatmap = HEATMAP if explain else None
        return [Verdict("covid", {"covid": 0.8, "no_findings": 0.2}, self.model, heatmap=heatmap) for _ in batch]


class FakeExplanations:
    def __init__(self) -> None:
        self.stored: dict[str, tuple[bytes, bytes]] = {}
        self.fail: TransientError | None = None

    def put(self, result_id: str, preview: bytes, heatmap: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.stored[result_id] = (preview, heatmap)


class FakeReports:
    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}

    def put_report(self, result_id: str, report: bytes) -> None:
        self.stored[result_id] = report


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_next = False

    def publish(self, result: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("SNS unreachable")
        self.sent.append(result)


class Clock:
    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds

    def remaining_s(self) -> float:
        return self.seconds


@pytest.fixture
def world(results_table: Any) -> dict[str, Any]:
    objects, endpoint, notifier, explanations = FakeObjects(), FakeEndpoint(), FakeNotifier(), FakeExplanations()
    reports = FakeReports()
    pipeline = ClassificationPipeline(
        objects,
        endpoint,
        ResultsStore(results_table),
        notifier,
        1_000_000,
        upload_prefix="uploads/",
        explanations=explanations,
        reports=reports,
    )
    return {
        "explanations": explanations,
        "reports": reports,
        "objects": objects,
        "endpoint": endpoint,
        "notifier": notifier,
        "pipeline": pipeline,
        "table": results_table,
    }


def _ref(world: dict[str, Any], key: str, data: bytes | Exception | None, size: int | None = None) -> ObjectRef:
    if data is not None:
        world["objects"].data[key] = data
    length = size if size is not None else (len(data) if isinstance(data, bytes) else 10)
    return ObjectRef("bucket", key, None, f"etag-{key}", length, "0A", "2026-11-26T10:00:00Z")


def _stored(world: dict[str, Any], ref: ObjectRef) -> dict[str, Any]:
    return world["table"].get_item(Key={"pk": ref.result_id})["Item"]  # type: ignore[no-any-return]


def test_a_good_image_is_classified_stored_and_notified_once(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/ward3/a.png", images.png(128))
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert (outcome.status, outcome.retry) == ("classified", False)
    assert _stored(world, ref)["label"] == "covid"
    (note,) = world["notifier"].sent
    assert note["status"] == "classified"
    assert "notified_at" in _stored(world, ref)


def test_a_classified_result_gets_its_preview_and_heatmap_stored_first(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/big.png", images.png(900))
    world["pipeline"].process([(ref, 1)])
    preview, heatmap = world["explanations"].stored[ref.result_id]
    assert heatmap == HEATMAP
    assert preview == world["pipeline"].prepare(images.png(900))  # the downsized image the model saw
    assert _stored(world, ref)["explanation"] is True


def _dicom(**tags: str) -> bytes:
    pixels = np.asarray(Image.open(io.BytesIO(images.png(128))).convert("L"))
    return dicoms.dicom(pixels, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), **tags)


def test_an_image_that_came_as_dicom_gets_its_structured_report_stored_first(world: dict[str, Any]) -> None:
    data = _dicom()
    ref = _ref(world, "uploads/dicom/PACS/1/2.dcm", data)
    world["pipeline"].process([(ref, 1)])
    report = pydicom.dcmread(io.BytesIO(world["reports"].stored[ref.result_id]))
    assert report.StudyInstanceUID == pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID
    assert _stored(world, ref)["structured_report"] is True


def test_a_refused_dicom_gets_a_report_that_says_why(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/dicom/PACS/1/3.dcm", _dicom(ViewPosition="LL"))
    world["pipeline"].process([(ref, 1)])
    report = pydicom.dcmread(io.BytesIO(world["reports"].stored[ref.result_id]))
    values = [getattr(item, "TextValue", "") for item in report.ContentSequence]
    assert "rejected" in values
    assert "not_frontal" in values


def test_an_image_that_did_not_come_as_dicom_gets_no_report(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    assert world["reports"].stored == {}
    assert "structured_report" not in _stored(world, ref)


def test_a_result_records_the_operating_point_that_decided(world: dict[str, Any]) -> None:
    world["endpoint"].model = {**MODEL, "covid_threshold": 0.31}
    ref = _ref(world, "uploads/a.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    assert float(_stored(world, ref)["covid_threshold"]) == 0.31


def test_a_failed_explanation_write_retries_without_a_result(world: dict[str, Any]) -> None:
    world["explanations"].fail = TransientError("S3 put failed")
    ref = _ref(world, "uploads/a.png", images.png(128))
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert outcome.status == "retry"
    assert "Item" not in world["table"].get_item(Key={"pk": ref.result_id})


def test_a_rejected_image_has_no_explanation(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/bad.png", images.PDF)
    world["pipeline"].process([(ref, 1)])
    assert world["explanations"].stored == {}
    assert "explanation" not in _stored(world, ref)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(images.PDF, "not_an_image"), (images.truncated(images.png(256)), "truncated"), (b"", "empty")],
)
def test_bad_files_are_rejected_without_calling_the_endpoint(world: dict[str, Any], data: bytes, reason: str) -> None:
    ref = _ref(world, "uploads/bad.png", data)
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert (outcome.status, outcome.reason) == ("rejected", reason)
    assert world["endpoint"].calls == []


def test_an_oversize_object_is_rejected_from_the_event_size_without_a_get(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/huge.png", None, size=5_000_000)
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert (outcome.status, outcome.reason) == ("rejected", "too_large")
    assert world["objects"].fetched == []


def test_a_deleted_object_is_rejected_as_missing(world: dict[str, Any]) -> None:
    (outcome,) = world["pipeline"].process([(_ref(world, "uploads/gone.png", None), 1)]).values()
    assert outcome.reason == "object_missing"


def test_one_endpoint_call_for_the_whole_batch_and_duplicates_sent_once(world: dict[str, Any]) -> None:
    refs = [_ref(world, f"uploads/{i}.png", images.png(96, seed=i)) for i in range(5)]
    world["pipeline"].process([(r, 1) for r in [*refs, refs[0]]])
    assert world["endpoint"].calls == [5]


def test_a_duplicate_delivery_stores_and_notifies_once(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    (again,) = world["pipeline"].process([(ref, 1)]).values()
    assert again.status == "duplicate"
    assert len(world["notifier"].sent) == 1


def test_a_transient_failure_is_retried_and_stores_nothing(world: dict[str, Any]) -> None:
    world["endpoint"].fail = EndpointUnavailableError("throttled")
    ref = _ref(world, "uploads/a.png", images.png(128))
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert (outcome.status, outcome.retry) == ("retry", True)
    assert "Item" not in world["table"].get_item(Key={"pk": ref.result_id})


def test_on_the_last_receive_a_transient_failure_is_recorded_failed_and_notified(world: dict[str, Any]) -> None:
    world["endpoint"].fail = EndpointUnavailableError("throttled")
    ref = _ref(world, "uploads/a.png", images.png(128))
    (outcome,) = world["pipeline"].process([(ref, 5)]).values()
    assert (outcome.status, outcome.retry) == ("failed", True)  # the message goes on to the dead-letter queue
    assert (_stored(world, ref)["status"], _stored(world, ref)["reason"]) == ("failed", "EndpointUnavailableError")
    assert [n["status"] for n in world["notifier"].sent] == ["failed"]
    world["pipeline"].record_failure(ref, "dead_lettered")  # what the dead-letter function does next
    assert len(world["notifier"].sent) == 1


def test_a_redriven_failed_object_ends_classified_and_notified_again_once(world: dict[str, Any]) -> None:
    world["endpoint"].fail = EndpointUnavailableError("down")
    ref = _ref(world, "uploads/a.png", images.png(128))
    world["pipeline"].process([(ref, 5)])
    world["endpoint"].fail = None
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert outcome.status == "classified"
    assert [n["status"] for n in world["notifier"].sent] == ["failed", "classified"]


def test_an_unexpected_error_of_one_object_leaves_its_neighbours_alone(world: dict[str, Any]) -> None:
    good = _ref(world, "uploads/good.png", images.png(128))
    odd = _ref(world, "uploads/odd.png", RuntimeError("nobody saw this coming"))
    outcomes = world["pipeline"].process([(good, 1), (odd, 1)])
    assert outcomes[good.result_id].status == "classified"
    assert (outcomes[odd.result_id].status, outcomes[odd.result_id].reason) == ("retry", "UnexpectedError")


def test_a_failed_publish_is_retried_and_the_redelivery_notifies_once(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a.png", images.png(128))
    world["notifier"].fail_next = True
    (first,) = world["pipeline"].process([(ref, 1)]).values()
    assert first.retry
    assert _stored(world, ref)["status"] == "classified"  # stored, not yet notified
    (second,) = world["pipeline"].process([(ref, 2)]).values()
    assert (second.status, second.retry) == ("duplicate", False)
    assert len(world["notifier"].sent) == 1


def test_a_notification_another_delivery_is_sending_makes_this_one_wait(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    world["table"].update_item(
        Key={"pk": ref.result_id},
        UpdateExpression="SET notify_lease = :far REMOVE notified_at",
        ExpressionAttributeValues={":far": 2**40},
    )
    (outcome,) = world["pipeline"].process([(ref, 2)]).values()
    assert outcome.retry
    assert len(world["notifier"].sent) == 1


def test_with_too_little_time_left_objects_wait_for_the_next_delivery(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a.png", images.png(128))
    (outcome,) = world["pipeline"].process([(ref, 1)], Clock(seconds=1.0)).values()
    assert (outcome.status, outcome.reason) == ("retry", "DeadlineError")
    assert world["notifier"].sent == []


def test_an_upload_of_a_user_belongs_to_that_user(world: dict[str, Any]) -> None:
    sub = "7d8e9f00-1111-4a2b-8c3d-4e5f6a7b8c9d"
    ref = _ref(world, f"uploads/{sub}/{'0' * 32}.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    assert _stored(world, ref)["owner"] == f"user#{sub}"


def test_a_notification_carries_no_object_key() -> None:
    class RecordingSns:
        def __init__(self) -> None:
            self.messages: list[str] = []

        def publish(self, **kwargs: Any) -> None:
            self.messages.append(json.dumps(kwargs))

    sns = RecordingSns()
    item = {"result_id": "r1", "status": "classified", "label": "covid", "object_ref": "b/uploads/MRN-1.png"}
    Notifier(sns, "arn:topic").publish({**item, "version_id": "v", "etag": "e", "owner": "shared"})
    (message,) = sns.messages
    assert "MRN-1" not in message
    assert json.loads(json.loads(message)["Message"]) == {"result_id": "r1", "status": "classified", "label": "covid"}


def test_concurrent_decodes_stay_within_the_byte_budget(results_table: Any) -> None:
    budget = ByteBudget(3 * 800 * 800)
    objects = FakeObjects()
    pipeline = ClassificationPipeline(
        objects, FakeEndpoint(), ResultsStore(results_table), FakeNotifier(), 10_000_000, decode_budget=budget
    )
    refs = []
    for i in range(8):
        objects.data[f"k{i}"] = images.png(800, seed=i)
        refs.append(ObjectRef("b", f"k{i}", None, f"e{i}", None, "0A", ""))
    decisions = pipeline.decide(refs)
    assert all(isinstance(d, Verdict) for d in decisions.values())
    assert 0 < budget.peak_held <= budget.capacity


def test_the_byte_budget_makes_a_large_decode_wait() -> None:
    budget = ByteBudget(100)
    with budget.hold(80):
        waiter = threading.Thread(target=lambda: budget.hold(50).__enter__())
        waiter.start()
        waiter.join(timeout=0.2)
        assert waiter.is_alive()  # 80 + 50 > 100: it waits
    waiter.join(timeout=2)
    assert not waiter.is_alive()


def test_a_decode_over_the_budgets_capacity_is_refused_not_let_through() -> None:
    budget = ByteBudget(100)
    with pytest.raises(DecompressionBombError), budget.hold(101):
        pass
    assert budget.peak_held == 0


def test_an_image_costing_more_than_the_budget_is_rejected(results_table: Any) -> None:
    objects = FakeObjects()
    pipeline = ClassificationPipeline(
        objects, FakeEndpoint(), ResultsStore(results_table), FakeNotifier(), 10_000_000, decode_budget=ByteBudget(1000)
    )
    objects.data["big"] = images.png(800)
    ref = ObjectRef("b", "big", None, "e1", None, "0A", "")
    outcome = pipeline.process([(ref, 1)])[ref.result_id]
    assert (outcome.status, outcome.reason) == ("rejected", "decompression_bomb")


def test_a_slow_decode_costs_its_batch_neighbours_nothing(results_table: Any) -> None:
    released = threading.Event()

    def downsize(data: bytes, max_side: int, max_bytes: int) -> bytes:
        if data == SLOW:
            released.wait(timeout=10)  # a decode that would hold the batch until the test lets it go
        return downsize_png(data, max_side, max_bytes)

    SLOW = images.png(64, seed=7)
    objects = FakeObjects()
    pipeline = ClassificationPipeline(
        objects,
        FakeEndpoint(),
        ResultsStore(results_table),
        FakeNotifier(),
        10_000_000,
        decode_timeout_s=0.3,
        downsize=downsize,
    )
    refs = [ObjectRef("b", f"k{i}", None, f"e{i}", None, "0A", "") for i in range(3)]
    objects.data.update({"k0": images.png(64, seed=1), "k1": SLOW, "k2": images.png(64, seed=2)})
    outcomes = pipeline.process([(ref, 1) for ref in refs])
    still_decoding = not released.is_set()
    released.set()
    assert still_decoding
    assert [outcomes[r.result_id].status for r in refs] == ["classified", "retry", "classified"]
    assert outcomes[refs[1].result_id].reason == "DecodeTimeoutError"


def test_a_decode_past_its_bound_on_the_last_receive_ends_failed(results_table: Any) -> None:
    released = threading.Event()

    def downsize(data: bytes, max_side: int, max_bytes: int) -> bytes:
        released.wait(timeout=10)
        return downsize_png(data, max_side, max_bytes)

    objects = FakeObjects()
    store = ResultsStore(results_table)
    pipeline = ClassificationPipeline(
        objects, FakeEndpoint(), store, FakeNotifier(), 10_000_000, decode_timeout_s=0.2, downsize=downsize
    )
    objects.data["k"] = images.png(64)
    ref = ObjectRef("b", "k", None, "e1", None, "0A", "")
    outcome = pipeline.process([(ref, 5)])[ref.result_id]
    released.set()
    assert (outcome.status, store.get(ref.result_id)["reason"]) == ("failed", "DecodeTimeoutError")


USER = "7d8e9f00-1111-4a2b-8c3d-4e5f6a7b8c9d"


def _version(world: dict[str, Any], key: str, version: str, data: bytes) -> ObjectRef:
    world["objects"].data[key] = data
    return ObjectRef("bucket", key, version, f"etag-{version}", len(data), f"0{version}", "2026-12-03T10:00:00Z")


def test_a_users_upload_form_classifies_its_first_image_only(world: dict[str, Any]) -> None:
    key = f"uploads/{USER}/{'a' * 32}.png"
    first = _version(world, key, "1", images.png(96, seed=1))
    again = _version(world, key, "2", images.png(96, seed=2))  # the same form posted once more
    outcomes = world["pipeline"].process([(first, 1), (again, 1)])
    assert (outcomes[first.result_id].status, outcomes[again.result_id].status) == ("classified", "rejected")
    assert outcomes[again.result_id].reason == "upload_form_reused"


def test_a_redelivered_first_upload_is_not_taken_for_a_reused_form(world: dict[str, Any]) -> None:
    key = f"uploads/{USER}/{'b' * 32}.png"
    first = _version(world, key, "1", images.png(96, seed=1))
    world["pipeline"].process([(first, 1)])
    assert world["pipeline"].process([(first, 2)])[first.result_id].status == "duplicate"


def test_objects_dropped_outside_a_users_prefix_are_never_limited_to_one_version(world: dict[str, Any]) -> None:
    first = _version(world, "uploads/ward3/x.png", "1", images.png(96, seed=1))
    later = _version(world, "uploads/ward3/x.png", "2", images.png(96, seed=2))
    outcomes = world["pipeline"].process([(first, 1), (later, 1)])
    assert {o.status for o in outcomes.values()} == {"classified"}


def test_a_result_says_which_site_validation_the_answer_rests_on(world: dict[str, Any]) -> None:
    world["endpoint"].model = {**MODEL, "site_validation": "St Example"}
    ref = _ref(world, "uploads/ward3/site.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    assert _stored(world, ref)["site_validation"] == "St Example"


def test_a_result_of_a_model_without_site_validation_says_none(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/ward3/plain.png", images.png(128))
    world["pipeline"].process([(ref, 1)])
    assert _stored(world, ref)["site_validation"] == "none"


def test_a_notification_carries_the_site_validation_as_an_attribute_to_filter_on() -> None:
    class RecordingSns:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def publish(self, **kwargs: Any) -> None:
            self.calls.append(kwargs)

    sns = RecordingSns()
    item = {"result_id": "r1", "status": "classified", "label": "covid", "site_validation": "St Example"}
    Notifier(sns, "arn:topic").publish(item)  # type: ignore[arg-type]
    (call,) = sns.calls
    assert json.loads(call["Message"])["site_validation"] == "St Example"
    assert call["MessageAttributes"]["site_validation"]["StringValue"] == "St Example"


def test_an_outcome_carries_the_numbers_drift_is_watched_by(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/ward3/drift.png", images.png(128))
    (outcome,) = world["pipeline"].process([(ref, 1)]).values()
    assert outcome.p_covid == 0.8


def test_an_uploads_file_name_is_kept_with_its_result(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a1b2.png", images.png(128, seed=5))
    world["objects"].names[ref.key] = "ward3/chest-9.png"
    world["pipeline"].process([(ref, 1)])
    assert _stored(world, ref)["file_name"] == "chest-9.png"


def test_a_dicoms_study_is_kept_with_its_result(world: dict[str, Any]) -> None:
    ref = _ref(world, "uploads/a1b3.dcm", dicoms.dicom(images.chest(128, seed=6), StudyDate="20261130"))
    world["pipeline"].process([(ref, 1)])
    assert _stored(world, ref)["study"]["study_date"] == "2026-11-30"
