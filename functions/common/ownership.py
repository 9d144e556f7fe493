"""Who owns a result and who may read it: the one place for the API's access rules.

Every result belongs to one *scope*:

- ``user#<sub>``: the Cognito user who created it. ``POST /uploads`` hands out keys of the form
  ``<UploadPrefix><sub>/<32 hex>.<ext>``, so the batch function attributes an upload from its key
  alone, without trusting anything a client sends; ``POST /classify?store=true`` records the caller.
- ``shared``: everything else dropped into the bucket (a PACS export, ``aws s3 cp``). Only members of
  the readers group and of the admins group read it, and only admins see its object keys.

A caller reads its own scope, plus the shared scope when it is a reader or an admin; nothing else,
by any route or filter. Group membership is matched exactly, by name, from the ID token's own JSON
list: API Gateway's REST authorizer flattens ``cognito:groups`` to one string, in which a group named
``x,admins`` or ``[admins]`` could not be told from the admins group. The object key of a result is
shown to its owner and, for shared results, to admins.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from functions.common.errors import UnauthorizedError
from functions.common.result import SHOWN_FIELDS, Result, public

SHARED: Final = "shared"
USER_PREFIX: Final = "user#"
_SUB = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|dcm)$")
EXTENSIONS: Final = {"image/png": ".png", "image/jpeg": ".jpg", "application/dicom": ".dcm"}


def user_scope(sub: str) -> str:
    return f"{USER_PREFIX}{sub}"


def upload_key(prefix: str, sub: str, content_type: str) -> str:
    """A fresh object key in the caller's own part of the upload prefix."""
    return f"{prefix}{sub}/{uuid.uuid4().hex}{EXTENSIONS[content_type]}"


def scope_of_key(key: str, prefix: str) -> str:
    """The scope of an uploaded object, from its key: a user's own upload, or shared."""
    if not key.startswith(prefix):
        return SHARED
    parts = key[len(prefix) :].split("/")
    if len(parts) == 2 and _SUB.match(parts[0]) and _UPLOAD_NAME.match(parts[1]):
        return user_scope(parts[0])
    return SHARED


def token_payload(id_token: str | None) -> dict[str, Any] | None:
    """The claims of a JWT as its issuer wrote them, or None. Not verified here: API Gateway's Cognito
    authorizer verified this very token (the request's Authorization header) before the function ran."""
    if not id_token:
        return None
    parts = id_token.removeprefix("Bearer ").strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def exact_groups(claims: Mapping[str, Any], id_token: str | None) -> frozenset[str]:
    """The caller's groups, each name exactly as Cognito holds it.

    From the ID token's ``cognito:groups`` list when the token is that of the claims' ``sub``; from the
    claim itself only when it is a list (an HTTP API, a test) or one name with no separator in it. A
    flattened string of several names cannot be split exactly, so it grants nothing (fails closed).
    """
    payload = token_payload(id_token)
    value = payload.get("cognito:groups") if payload is not None and payload.get("sub") == claims.get("sub") else None
    if value is None:
        value = claims.get("cognito:groups")
    if value is None:
        return frozenset()
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    text = str(value)
    return frozenset({text}) if text and not re.search(r"[\s,\[\]]", text) else frozenset()


@dataclass(frozen=True)
class AccessGroups:
    """Names of the Cognito groups that widen what a caller reads (template parameters)."""

    readers: str
    admins: str


@dataclass(frozen=True)
class Caller:
    sub: str
    reads_shared: bool = False
    is_admin: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any] | None, groups: AccessGroups, id_token: str | None = None) -> Caller:
        """The signed-in user of an API request, from the Cognito authorizer's claims and its ID token."""
        claims = claims or {}
        sub = str(claims.get("sub", ""))
        if not _SUB.match(sub) or claims.get("token_use", "id") != "id":
            raise UnauthorizedError("the request carries no Cognito ID token identity")
        member_of = exact_groups(claims, id_token)
        is_admin = groups.admins in member_of
        return cls(sub=sub, reads_shared=is_admin or groups.readers in member_of, is_admin=is_admin)

    @property
    def scope(self) -> str:
        return user_scope(self.sub)

    @property
    def readable_scopes(self) -> tuple[str, ...]:
        return (self.scope, SHARED) if self.reads_shared else (self.scope,)

    @property
    def key_scopes(self) -> tuple[str, ...]:
        """Scopes whose object keys this caller may see (and so search by)."""
        return (self.scope, SHARED) if self.is_admin else (self.scope,)

    def may_read(self, scope: str | None) -> bool:
        return scope in self.readable_scopes

    def may_see_key(self, scope: str | None) -> bool:
        return scope in self.key_scopes


def visible_result(item: Result, caller: Caller) -> dict[str, Any]:
    """What ``caller`` sees of a result: ``SHOWN_FIELDS``; the object key only where ``may_see_key``; the
    file name the web client sent only to the result's owner."""
    view = public(item, SHOWN_FIELDS)
    view["scope"] = "own" if item.get("owner") == caller.scope else "shared"
    if item.get("file_name") and view["scope"] == "own":
        view["file_name"] = item["file_name"]
    if item.get("source", "s3") == "s3" and caller.may_see_key(item.get("owner")):
        view["key"] = str(item["object_ref"]).split("/", 1)[1]
        if item.get("version_id"):
            view["version_id"] = item["version_id"]
    return view
