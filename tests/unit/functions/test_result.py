from __future__ import annotations

import typing

from functions.common.result import (
    NOTIFIED_FIELDS,
    SHOWN_FIELDS,
    Result,
    clean_file_name,
    new_result,
    public,
)
from functions.common.s3_events import ObjectRef

REF = ObjectRef("bucket", "site-a/patient 7.png", "v1", "etag", 10, "0A", "2026-11-27T00:00:00Z")


def test_a_new_result_carries_the_objects_identity_and_only_the_fields_given() -> None:
    result = new_result(REF, "rejected", "site-a", reason="not_a_chest_xray")
    assert result["pk"] == result["result_id"] == REF.result_id
    assert (result["object_ref"], result["version_id"], result["status"]) == (REF.object_ref, "v1", "rejected")
    assert result["day"] == result["created_at"][:10]
    assert "label" not in result
    assert result["reason"] == "not_a_chest_xray"


def test_no_shown_or_notified_field_names_the_object_or_its_owner() -> None:
    identifying = {"pk", "object_ref", "owner", "version_id", "etag", "sequencer"}
    assert not identifying & set(SHOWN_FIELDS)
    assert not identifying & set(NOTIFIED_FIELDS)
    assert set(NOTIFIED_FIELDS) <= set(SHOWN_FIELDS)
    assert set(SHOWN_FIELDS) <= set(typing.get_type_hints(Result))


def test_public_leaves_out_empty_fields() -> None:
    result = new_result(REF, "failed", "site-a", reason="EndpointUnavailableError", label=None)
    assert public(result, NOTIFIED_FIELDS).keys() == {"result_id", "status", "reason", "created_at", "source"}


def test_a_sent_file_name_keeps_its_last_path_part_without_control_characters() -> None:
    assert clean_file_name("C:\\scans\\ward 3\\chest.png") == "chest.png"
    assert clean_file_name("../up/ch\x00est\n.dcm") == "chest.dcm"
    assert clean_file_name(" \t ") is None
    assert clean_file_name(None) is None
