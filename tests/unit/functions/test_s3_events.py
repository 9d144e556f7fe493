from __future__ import annotations

import json

import pytest

from functions.common.s3_events import parse_sqs_body, refs_from_s3_event, sequencer_key
from tests.conftest import load_event


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("uploads/chest+x-ray%2B1.png", "uploads/chest x-ray+1.png"),
        ("uploads%2Fa%2Fb.png", "uploads/a/b.png"),  # moto encodes '/' too
        ("uploads/r%C3%B6ntgen+%C3%A9t%C3%A9.png", "uploads/röntgen été.png"),
        ("uploads/100%25.png", "uploads/100%.png"),
    ],
)
def test_keys_are_url_decoded(encoded: str, key: str) -> None:
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = encoded
    assert refs_from_s3_event(event)[0].key == key


def test_sqs_wrapped_event_gives_the_same_ref_as_direct() -> None:
    direct = refs_from_s3_event(load_event("s3-put.json"))
    wrapped = parse_sqs_body(load_event("sqs-s3-put.json")["Records"][0]["body"])
    assert wrapped == direct
    assert direct[0].version_id == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"


def test_test_event_yields_nothing() -> None:
    assert parse_sqs_body(load_event("s3-test-event.json")["Records"][0]["body"]) == []


def test_result_id_is_per_version_and_hides_the_key() -> None:
    (ref,) = refs_from_s3_event(load_event("s3-put.json"))
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["versionId"] = "other"
    (other,) = refs_from_s3_event(event)
    assert ref.result_id != other.result_id
    assert "x-ray" not in ref.result_id


def test_non_create_events_are_ignored() -> None:
    event = load_event("s3-put.json")
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert refs_from_s3_event(event) == []


def test_sequencers_of_different_length_compare_after_right_padding() -> None:
    assert sequencer_key("0055AED6DCD90281E5") < sequencer_key("0055AED6DCD90281E6")
    assert sequencer_key("0A") > sequencer_key("09FFFF")


def test_malformed_body_raises() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_sqs_body("not json")
