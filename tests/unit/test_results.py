from __future__ import annotations

from typing import Any

import pytest

from functions.common.errors import BadRequestError, NotFoundError
from functions.common.results import ResultsStore


def _item(
    pk: str = "r1", status: str = "classified", seq: str = "0000000000000000000000000000000A", **extra: Any
) -> dict[str, Any]:
    return {
        "pk": pk,
        "result_id": pk,
        "status": status,
        "sequencer": seq,
        "created_at": extra.pop("created_at", "2026-11-26T10:00:00.000+00:00"),
        "day": "2026-11-26",
        "object_ref": "bucket/uploads/a.png",
        "label": "covid",
        "probabilities": {"covid": 0.75},
        **extra,
    }


@pytest.fixture
def store(results_table: Any) -> ResultsStore:
    return ResultsStore(results_table)


def test_first_final_result_is_written_and_read_back(store: ResultsStore) -> None:
    assert store.put_final(_item())
    assert store.get("r1")["probabilities"] == {"covid": 0.75}


def test_a_duplicate_event_does_not_write_twice(store: ResultsStore) -> None:
    assert store.put_final(_item())
    assert not store.put_final(_item(label="pneumonia"))
    assert store.get("r1")["label"] == "covid"


def test_a_newer_event_replaces_an_older_result(store: ResultsStore) -> None:
    store.put_final(_item(seq="0000000000000000000000000000000A"))
    assert store.put_final(_item(seq="0000000000000000000000000000000B", label="pneumonia"))
    assert store.get("r1")["label"] == "pneumonia"


def test_an_older_event_never_overwrites_a_newer_result(store: ResultsStore) -> None:
    store.put_final(_item(seq="0000000000000000000000000000000B", label="pneumonia"))
    assert not store.put_final(_item(seq="0000000000000000000000000000000A"))
    assert store.get("r1")["label"] == "pneumonia"


def test_failed_never_overwrites_a_final_result(store: ResultsStore) -> None:
    store.put_final(_item())
    assert not store.put_failed(_item(status="failed"))
    assert store.get("r1")["status"] == "classified"


def test_a_final_result_replaces_failed(store: ResultsStore) -> None:
    store.put_failed(_item(status="failed"))
    assert store.put_final(_item())
    assert store.get("r1")["status"] == "classified"


def test_missing_result_is_not_found(store: ResultsStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("nope")


def test_listing_is_newest_first_and_paginated(store: ResultsStore) -> None:
    for i in range(5):
        store.put_final(_item(pk=f"r{i}", created_at=f"2026-11-26T10:00:0{i}.000+00:00"))
    first = store.query("status", "classified", limit=3)
    assert [i["pk"] for i in first["items"]] == ["r4", "r3", "r2"]
    second = store.query("status", "classified", limit=3, next_token=first["next_token"])
    assert [i["pk"] for i in second["items"]] == ["r1", "r0"]


def test_listing_by_an_unknown_attribute_is_a_bad_request(store: ResultsStore) -> None:
    with pytest.raises(BadRequestError):
        store.query("patient_name", "x")
