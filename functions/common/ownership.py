"""Who owns a result and who may read it: the one place for the API's access rules.

Every result belongs to one *scope*:

- ``user#<sub>``: the Cognito user who created it. ``POST /uploads`` hands out keys of the form
  ``<UploadPrefix><sub>/<32 hex>.<ext>``, so the batch function attributes an upload from its key
  alone, without trusting anything a client sends; ``POST /classify?store=true`` records the caller.
- ``shared``: everything else dropped into the bucket (a PACS export, ``aws s3 cp``). Only members of
  the readers group and of the admins group read it, and only admins see its object keys.

A caller reads its own scope, plus the shared scope when it is a reader or an admin; nothing else,
by any route or filter. The object key of a result is shown to its owner and, for shared results, to
admins.
"""

from __future__ import annotations

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


def parse_groups(value: Any) -> frozenset[str]:
    """``cognito:groups`` as a list (the token), ``"a,b"`` (REST API claims) or ``"[a b]"`` (HTTP API)."""
    if value is None:
        return frozenset()
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    return frozenset(g for g in re.split(r"[\s,]+", str(value).strip().strip("[]")) if g)


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
    def from_claims(cls, claims: Mapping[str, Any] | None, groups: AccessGroups) -> Caller:
        """The signed-in user of an API request, from the Cognito authorizer's claims."""
        claims = claims or {}
        sub = str(claims.get("sub", ""))
        if not _SUB.match(sub) or claims.get("token_use", "id") != "id":
            raise UnauthorizedError("the request carries no Cognito ID token identity")
        member_of = parse_groups(claims.get("cognito:groups"))
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
    """What ``caller`` sees of a result: ``SHOWN_FIELDS``; the object key only where ``may_see_key``."""
    view = public(item, SHOWN_FIELDS)
    view["scope"] = "own" if item.get("owner") == caller.scope else "shared"
    if item.get("source", "s3") == "s3" and caller.may_see_key(item.get("owner")):
        view["key"] = str(item["object_ref"]).split("/", 1)[1]
        if item.get("version_id"):
            view["version_id"] = item["version_id"]
    return view
