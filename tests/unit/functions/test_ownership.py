"""Who owns a result and who reads it: the access rules, without AWS."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from functions.common.errors import UnauthorizedError
from functions.common.ownership import (
    SHARED,
    AccessGroups,
    Caller,
    scope_of_key,
    upload_key,
    user_scope,
    visible_result,
)

SUB = "7d8e9f00-1111-4a2b-8c3d-4e5f6a7b8c9d"
OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
GROUPS = AccessGroups(readers="readers", admins="admins")


def _caller(groups: object = None, sub: str = SUB) -> Caller:
    return Caller.from_claims({"sub": sub, "token_use": "id", "cognito:groups": groups}, GROUPS)


def test_an_upload_key_handed_out_belongs_to_its_user() -> None:
    key = upload_key("uploads/", SUB, "image/png")
    assert key.startswith(f"uploads/{SUB}/")
    assert scope_of_key(key, "uploads/") == user_scope(SUB)


@pytest.mark.parametrize(
    "key",
    [
        "uploads/ward3/MRN-00123456_smith_john.png",  # a PACS export
        f"uploads/{SUB}/my-own-name.png",  # not a name POST /uploads hands out
        f"uploads/{SUB}/deeper/0123456789abcdef0123456789abcdef.png",
        f"elsewhere/{SUB}/0123456789abcdef0123456789abcdef.png",
    ],
)
def test_everything_else_dropped_into_the_bucket_is_shared(key: str) -> None:
    assert scope_of_key(key, "uploads/") == SHARED


def _token(payload: dict[str, Any]) -> str:
    """An ID token as API Gateway's authorizer let it through (its signature is not read again here)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


def _flattened(groups: list[str], with_token: bool = True) -> Caller:
    """A REST API request: the claim flattened to one string, and the ID token in Authorization."""
    claims = {"sub": SUB, "token_use": "id", "cognito:groups": ",".join(groups)}
    token = _token({"sub": SUB, "token_use": "id", "cognito:groups": groups}) if with_token else None
    return Caller.from_claims(claims, GROUPS, token)


def test_groups_are_read_from_the_id_tokens_own_list() -> None:
    caller = _flattened(["readers", "admins"])
    assert (caller.reads_shared, caller.is_admin) == (True, True)


@pytest.mark.parametrize("name", ["x,admins", "[admins]", "admins readers", "admins,"])
def test_a_group_whose_name_holds_an_admin_name_grants_nothing(name: str) -> None:
    caller = _flattened([name])
    assert (caller.reads_shared, caller.is_admin) == (False, False)


def test_a_list_claim_is_matched_exactly() -> None:
    caller = _caller(["x,admins", "readers"])
    assert (caller.reads_shared, caller.is_admin) == (True, False)


def test_a_flattened_claim_of_one_group_without_a_token_is_that_group() -> None:
    assert _flattened(["admins"], with_token=False).is_admin


def test_a_flattened_claim_of_several_groups_without_a_token_fails_closed() -> None:
    caller = _flattened(["x", "admins"], with_token=False)
    assert (caller.reads_shared, caller.is_admin) == (False, False)


def test_a_token_of_another_user_is_not_used_for_the_groups() -> None:
    claims = {"sub": SUB, "token_use": "id", "cognito:groups": "readers"}
    caller = Caller.from_claims(claims, GROUPS, _token({"sub": OTHER, "cognito:groups": ["admins"]}))
    assert (caller.reads_shared, caller.is_admin) == (True, False)


def test_a_plain_user_reads_only_its_own_scope() -> None:
    caller = _caller()
    assert caller.readable_scopes == (user_scope(SUB),)
    assert not caller.may_read(SHARED)
    assert not caller.may_read(user_scope(OTHER))


def test_a_reader_also_reads_shared_results_but_not_their_keys() -> None:
    caller = _caller("readers")
    assert caller.may_read(SHARED)
    assert not caller.may_see_key(SHARED)
    assert caller.key_scopes == (user_scope(SUB),)


def test_an_admin_reads_shared_results_with_their_keys() -> None:
    caller = _caller("admins")
    assert caller.may_read(SHARED)
    assert caller.may_see_key(SHARED)
    assert not caller.may_read(user_scope(OTHER))


@pytest.mark.parametrize(
    "claims",
    [
        None,
        {},
        {"sub": "not-a-uuid", "token_use": "id"},
        {"sub": SUB, "token_use": "access"},
    ],
)
def test_a_request_without_an_id_token_identity_is_unauthorized(claims: dict[str, str] | None) -> None:
    with pytest.raises(UnauthorizedError):
        Caller.from_claims(claims, GROUPS)


def _item(owner: str, source: str = "s3") -> dict[str, object]:
    return {
        "pk": "r1",
        "result_id": "r1",
        "owner": owner,
        "owner_status": f"{owner}#classified",
        "object_ref": "bucket/uploads/ward3/MRN-00123456.png",
        "version_id": "v1",
        "sequencer": "0A",
        "status": "classified",
        "label": "covid",
        "source": source,
    }


def test_the_owner_sees_its_key_and_no_internal_attribute() -> None:
    view = visible_result(_item(user_scope(SUB)), _caller())
    assert view["key"] == "uploads/ward3/MRN-00123456.png"
    assert view["scope"] == "own"
    assert not {"pk", "owner", "owner_status", "object_ref", "sequencer"} & set(view)


def test_a_reader_sees_a_shared_result_without_its_key() -> None:
    view = visible_result(_item(SHARED), _caller("readers"))
    assert (view["scope"], view["label"]) == ("shared", "covid")
    assert "MRN" not in str(view)


def test_an_admin_sees_a_shared_results_key() -> None:
    assert visible_result(_item(SHARED), _caller("admins"))["key"].endswith("MRN-00123456.png")


def test_the_owner_sees_the_file_name_it_sent() -> None:
    item = {**_item(user_scope(SUB)), "file_name": "ward3-chest.png"}
    assert visible_result(item, _caller())["file_name"] == "ward3-chest.png"  # type: ignore[arg-type]


def test_a_reader_of_a_shared_result_does_not_see_a_file_name() -> None:
    item = {**_item(SHARED), "file_name": "MRN-00123456.png"}
    assert "file_name" not in visible_result(item, _caller("admins"))  # type: ignore[arg-type]
