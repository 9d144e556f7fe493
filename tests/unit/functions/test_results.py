from __future__ import annotations

import time
from typing import Any

import pytest

from functions.common.errors import ResultNotFoundError
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
        "owner": extra.pop("owner", "user#a"),
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
    with pytest.raises(ResultNotFoundError):
        store.get("nope")


ALICE, BOB = "user#a", "user#b"


def _page_through(store: ResultsStore, scopes: tuple[str, ...], limit: int, **query: Any) -> list[list[str]]:
    pages, positions = [], None
    while True:
        items, positions = store.list_scoped(scopes, limit=limit, positions=positions, **query)
        pages.append([i["pk"] for i in items])
        if positions is None:
            return pages


def test_listing_is_newest_first_and_paginated(store: ResultsStore) -> None:
    for i in range(5):
        store.put_final(_item(pk=f"r{i}", created_at=f"2026-11-26T10:00:0{i}.000+00:00"))
    assert _page_through(store, (ALICE,), 3, attribute="status", value="classified") == [
        ["r4", "r3", "r2"],
        ["r1", "r0"],
    ]


def test_a_listing_never_contains_another_owners_results(store: ResultsStore) -> None:
    store.put_final(_item(pk="mine", owner=ALICE))
    store.put_final(_item(pk="theirs", owner=BOB))
    for query in ({}, {"attribute": "status", "value": "classified"}, {"attribute": "label", "value": "covid"}):
        items, _ = store.list_scoped((ALICE,), **query)  # type: ignore[arg-type]
        assert [i["pk"] for i in items] == ["mine"]


def test_two_scopes_merge_newest_first_across_pages_without_gaps_or_repeats(store: ResultsStore) -> None:
    expected = []
    for i in range(9):
        owner = ALICE if i % 3 else "shared"
        store.put_final(_item(pk=f"r{i}", owner=owner, created_at=f"2026-11-26T10:00:0{i}.000+00:00"))
        expected.insert(0, f"r{i}")
    pages = _page_through(store, (ALICE, "shared"), 2)
    assert [pk for page in pages for pk in page] == expected
    assert all(len(page) == 2 for page in pages[:-1])


def test_results_by_object_key_are_found_only_in_the_owners_scope(store: ResultsStore) -> None:
    store.put_final(_item(pk="v1", owner=ALICE))
    query = {"attribute": "object_ref", "value": "bucket/uploads/a.png"}
    assert [i["pk"] for i in store.list_scoped((ALICE,), **query)[0]] == ["v1"]  # type: ignore[arg-type]
    assert store.list_scoped((BOB, "shared"), **query)[0] == []  # type: ignore[arg-type]


def test_every_result_expires_after_the_retention(results_table: Any) -> None:
    ResultsStore(results_table, retention_days=2).put_final(_item())
    expires = int(results_table.get_item(Key={"pk": "r1"})["Item"]["expires_at"])
    assert expires == pytest.approx(time.time() + 2 * 86_400, abs=60)


def test_listing_by_an_unknown_attribute_is_refused(store: ResultsStore) -> None:
    with pytest.raises(ValueError, match="patient_name"):
        store.list_scoped((ALICE,), attribute="patient_name", value="x")
