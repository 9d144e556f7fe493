"""Attacks on the API through the local gateway, with several users: nothing of one user reaches another.

Users: alice and bob (no group), a member of the readers group and one of the admins group. Alice
uploads through a presigned POST and stores a classification; a PACS-style export is dropped straight
into the bucket under a key that names a patient (the shared scope).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from importlib import resources
from typing import Any

import jwt
import pytest
import urllib3

from local_stack.stack import LocalDeployment
from model.core.labels import ALL_LABELS
from tests import images
from tests.integration.test_api import call as api_call
from tests.integration.test_api import post_form

pytestmark = pytest.mark.integration
PATIENT_KEY_MARKER = "MRN-00123456"


def call(
    stack: LocalDeployment,
    token: str | None,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    return api_call(stack, method, path, body, token=token, content_type=content_type)


class Users:
    def __init__(self, stack: LocalDeployment) -> None:
        self.stack = stack
        tag = uuid.uuid4().hex[:6]
        self.names = {
            "alice": f"alice-{tag}@example.org",
            "bob": f"bob-{tag}@example.org",
            "reader": f"reader-{tag}@example.org",
            "admin": f"admin-{tag}@example.org",
        }
        groups = {"reader": ("readers",), "admin": ("admins",)}
        self.passwords = {who: stack.create_user(name, groups.get(who, ())) for who, name in self.names.items()}

    def token(self, who: str) -> str:
        return self.stack.harness.id_token(self.names[who], self.passwords[who])

    def sub(self, who: str) -> str:
        return str(jwt.decode(self.token(who), options={"verify_signature": False})["sub"])


@pytest.fixture(scope="module")
def users(stack: LocalDeployment) -> Users:
    return Users(stack)


@pytest.fixture(scope="module")
def alices(stack: LocalDeployment, users: Users) -> dict[str, Any]:
    """Alice's upload (presigned POST) and stored classification, and a shared PACS drop."""
    alice = users.token("alice")
    _, upload = call(stack, alice, "POST", "/uploads", json.dumps({"content_type": "image/png"}).encode())
    assert post_form(upload, images.xray_png(300, seed=21)) in (200, 201, 204)
    status, stored = call(stack, alice, "POST", "/classify?store=true", images.xray_png(256, seed=22), "image/png")
    assert status == 200
    pacs_key = (
        f"{stack.template.parameter('UploadPrefix')}ward3/{PATIENT_KEY_MARKER}_smith_john_{uuid.uuid4().hex[:6]}.png"
    )
    stack.client("s3").put_object(
        Bucket=stack.template.ref("UploadBucket"), Key=pacs_key, Body=images.xray_png(280, seed=23)
    )
    found = stack.harness.wait_for_results([upload["key"], pacs_key])
    assert len(found) == 2
    return {
        "upload_key": upload["key"],
        "upload_id": found[upload["key"]]["result_id"],
        "stored_id": stored["result_id"],
        "pacs_key": pacs_key,
        "pacs_id": found[pacs_key]["result_id"],
    }


def every_listing(stack: LocalDeployment, token: str, keys: list[str]) -> str:
    """Everything the caller gets from every listing route and filter, as one text."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    paths = ["/results", "/results?status=classified", "/results?status=rejected", f"/results?date={today}"]
    paths += [f"/results?label={label}" for label in ALL_LABELS]
    paths += [f"/results?key={urllib.parse.quote(key)}" for key in keys]
    seen = []
    for path in paths:
        status, body = call(stack, token, "GET", path)
        assert status == 200, (path, body)
        seen.append(json.dumps(body))
    return "\n".join(seen)


def test_a_user_sees_all_of_its_own_results_with_their_keys(
    stack: LocalDeployment, users: Users, alices: dict[str, Any]
) -> None:
    alice = users.token("alice")
    listed = every_listing(stack, alice, [alices["upload_key"]])
    assert alices["upload_id"] in listed
    assert alices["stored_id"] in listed
    status, own = call(stack, alice, "GET", f"/results/{alices['upload_id']}")
    assert (status, own["key"], own["scope"]) == (200, alices["upload_key"], "own")


def test_another_user_sees_nothing_of_the_first_by_any_route_or_filter(
    stack: LocalDeployment, users: Users, alices: dict[str, Any]
) -> None:
    bob = users.token("bob")
    listed = every_listing(stack, bob, [alices["upload_key"], alices["pacs_key"]])
    for secret in (
        alices["upload_id"],
        alices["stored_id"],
        alices["upload_key"],
        users.sub("alice"),
        PATIENT_KEY_MARKER,
    ):
        assert secret not in listed


@pytest.mark.parametrize("which", ["upload_id", "stored_id", "pacs_id"])
def test_another_users_result_is_404_like_a_missing_one(
    stack: LocalDeployment, users: Users, alices: dict[str, Any], which: str
) -> None:
    bob = users.token("bob")
    assert call(stack, bob, "GET", f"/results/{alices[which]}") == call(stack, bob, "GET", "/results/" + "0" * 32)
    assert call(stack, bob, "GET", f"/results/{alices[which]}")[0] == 404


def test_a_reader_sees_bucket_drops_but_not_their_keys(
    stack: LocalDeployment, users: Users, alices: dict[str, Any]
) -> None:
    reader = users.token("reader")
    listed = every_listing(stack, reader, [alices["pacs_key"]])
    assert alices["pacs_id"] in listed
    assert PATIENT_KEY_MARKER not in listed
    assert alices["upload_id"] not in listed
    status, shared = call(stack, reader, "GET", f"/results/{alices['pacs_id']}")
    assert (status, shared["scope"]) == (200, "shared")
    assert "key" not in shared


def test_an_admin_sees_bucket_drops_with_their_keys(
    stack: LocalDeployment, users: Users, alices: dict[str, Any]
) -> None:
    status, listing = call(stack, users.token("admin"), "GET", f"/results?key={urllib.parse.quote(alices['pacs_key'])}")
    assert status == 200
    assert [i["key"] for i in listing["items"]] == [alices["pacs_key"]]
    assert alices["upload_id"] not in every_listing(stack, users.token("admin"), [])


def test_the_demo_user_reads_bucket_drops(stack: LocalDeployment, alices: dict[str, Any]) -> None:
    assert alices["pacs_id"] in every_listing(stack, stack.harness.id_token(), [])


def test_a_reader_pages_through_own_and_shared_results_without_repeats(
    stack: LocalDeployment, users: Users, alices: dict[str, Any]
) -> None:
    reader = users.token("reader")
    call(stack, reader, "POST", "/classify?store=true", images.xray_png(200, seed=31), "image/png")
    _, everything = call(stack, reader, "GET", "/results?limit=100")
    ids, token = [], None
    while True:
        _, page = call(stack, reader, "GET", "/results?limit=1" + (f"&next_token={token}" if token else ""))
        ids += [i["result_id"] for i in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    assert ids == [i["result_id"] for i in everything["items"]]
    assert {"own", "shared"} <= {i["scope"] for i in everything["items"]}


# -- tokens the gateway must refuse ----------------------------------------------------------------
def _moto_signing_key() -> jwt.PyJWK:
    packed = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    return jwt.PyJWK(json.loads(gzip.decompress(packed)))


def test_an_expired_id_token_is_401(stack: LocalDeployment) -> None:
    header = jwt.get_unverified_header(stack.harness.id_token())
    claims = jwt.decode(stack.harness.id_token(), options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600, auth_time=int(time.time()) - 7200)
    expired = jwt.encode(claims, _moto_signing_key().key, algorithm="RS256", headers={"kid": header["kid"]})
    assert call(stack, expired, "GET", "/results")[0] == 401
    # The same claims, freshly signed, are accepted: the refusal is for the expiry alone.
    claims.update(exp=int(time.time()) + 600)
    fresh = jwt.encode(claims, _moto_signing_key().key, algorithm="RS256", headers={"kid": header["kid"]})
    assert call(stack, fresh, "GET", "/results")[0] == 200


def test_a_token_of_another_user_pool_is_401(stack: LocalDeployment) -> None:
    idp = stack.client("cognito-idp")
    pool = idp.create_user_pool(PoolName=f"other-{uuid.uuid4().hex[:6]}", UsernameAttributes=["email"])["UserPool"][
        "Id"
    ]
    client = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="other", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )
    password = "Other-" + uuid.uuid4().hex + "1!"
    idp.admin_create_user(UserPoolId=pool, Username="eve@example.org", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username="eve@example.org", Password=password, Permanent=True)
    token = idp.initiate_auth(
        ClientId=client["UserPoolClient"]["ClientId"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "eve@example.org", "PASSWORD": password},
    )["AuthenticationResult"]["IdToken"]
    assert call(stack, token, "GET", "/results")[0] == 401


def test_an_access_token_instead_of_the_id_token_is_401(stack: LocalDeployment) -> None:
    access = stack.client("cognito-idp").initiate_auth(
        ClientId=stack.template.ref("UserPoolClient"),
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "demo@example.com", "PASSWORD": stack.demo_password},
    )["AuthenticationResult"]["AccessToken"]
    assert call(stack, access, "GET", "/results")[0] == 401


@pytest.mark.parametrize("token", ["garbage", "Bearer ", "a.b.c", ""])
def test_garbage_tokens_are_401(stack: LocalDeployment, token: str) -> None:
    assert call(stack, token, "GET", "/results")[0] == 401


# -- input the API function must answer with 400, never crash on -----------------------------------
def test_a_text_body_outside_latin1_is_400(stack: LocalDeployment) -> None:
    status, body = call(stack, stack.harness.id_token(), "POST", "/classify", "☢ 胸部X線".encode(), "text/plain")
    assert status == 400
    assert "image" in body["error"]["message"]


@pytest.mark.parametrize("token", ["null", "bnVsbA", "eyJ9.e30", "x" * 3000])
def test_a_garbled_next_token_is_400(stack: LocalDeployment, token: str) -> None:
    status, _ = call(stack, stack.harness.id_token(), "GET", f"/results?next_token={token}")
    assert status in (400, 422)


def test_another_users_next_token_is_400(stack: LocalDeployment, users: Users) -> None:
    alice = users.token("alice")
    for seed in range(2):
        call(stack, alice, "POST", "/classify?store=true", images.xray_png(150, seed=40 + seed), "image/png")
    _, page = call(stack, alice, "GET", "/results?limit=1")
    assert page["next_token"]
    assert call(stack, alice, "GET", f"/results?limit=1&next_token={page['next_token']}")[0] == 200
    assert call(stack, users.token("bob"), "GET", f"/results?limit=1&next_token={page['next_token']}")[0] == 400
    assert call(stack, alice, "GET", f"/results?status=classified&next_token={page['next_token']}")[0] == 400


def test_an_edited_next_token_is_400(stack: LocalDeployment, users: Users) -> None:
    alice = users.token("alice")
    _, page = call(stack, alice, "GET", "/results?limit=1")
    payload, signature = page["next_token"].split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=="))
    document["sub"] = users.sub("bob")
    forged = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    assert call(stack, users.token("bob"), "GET", f"/results?next_token={forged}.{signature}")[0] == 400


# -- presigned uploads ------------------------------------------------------------------------------
def test_the_presigned_post_binds_key_type_and_size_with_sigv4(stack: LocalDeployment, users: Users) -> None:
    status, upload = call(
        stack, users.token("bob"), "POST", "/uploads", json.dumps({"content_type": "image/jpeg"}).encode()
    )
    assert status == 200
    assert upload["key"].startswith(f"{stack.template.parameter('UploadPrefix')}{users.sub('bob')}/")
    assert upload["key"].endswith(".jpg")
    fields = upload["fields"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": upload["key"]} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, upload["max_bytes"]] in conditions
    expires = dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=upload["expires_in"] + 5)


def test_the_upload_form_does_not_let_the_client_choose_the_key(stack: LocalDeployment, users: Users) -> None:
    _, upload = call(
        stack,
        users.token("bob"),
        "POST",
        "/uploads",
        json.dumps({"content_type": "image/png", "key": "uploads/x.png"}).encode(),
    )
    assert upload["key"] != "uploads/x.png"
    assert urllib3.util.parse_url(upload["url"]).path.endswith(stack.template.ref("UploadBucket"))
