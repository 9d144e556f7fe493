"""The results table: one item per uploaded object version, written with conditions, read by owner.

Conditions make the table itself the guard against double work: a final result (classified or
rejected) is written only if none exists, if the stored one is ``failed``, or if the stored one came
from an older S3 event (smaller sequencer). ``failed`` never overwrites a final result.

Reads are scoped by design, not filtered after the fact: every item has an ``owner`` scope (see
``functions.common.ownership``) and every listing is a ``Query`` on an index whose partition key
starts with that scope (``owner``, ``owner#status``, ``owner#label``, ``owner#day``, ``owner#bucket/key``).
A listing over several scopes (a reader's own results and the shared ones) merges one query per
scope, newest first, and hands back a position per scope.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, cast

from botocore.exceptions import ClientError

from functions.common.aws_errors import condition_failed
from functions.common.errors import ResultNotFoundError
from functions.common.result import FAILED, Result, Status, now_iso

# Listing filter -> (index, its partition key, its sort key); None is "all of the scope's results".
# An object's versions sort by S3 sequencer (the order S3 wrote them), everything else by time.
INDEXES: Final[dict[str | None, tuple[str, str, str]]] = {
    None: ("ByOwner", "owner", "created_at"),
    "status": ("ByOwnerStatus", "owner_status", "created_at"),
    "label": ("ByOwnerLabel", "owner_label", "created_at"),
    "day": ("ByOwnerDay", "owner_day", "created_at"),
    "object_ref": ("ByOwnerObject", "owner_object", "sequencer"),
}
CLAIMED: Final = "claimed"
NOTIFIED: Final = "notified"
BUSY: Final = "busy"
DONE: Final = "done"
Positions = dict[str, Any]


def _to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = json.loads(json.dumps(item), parse_float=Decimal)
    return {k: v for k, v in converted.items() if v is not None}


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(item, default=lambda d: float(d) if d % 1 else int(d)))  # type: ignore[no-any-return]


def scoped_attributes(item: Mapping[str, Any]) -> dict[str, str]:
    """The owner-prefixed index keys of an item (absent where the attribute is, e.g. no label)."""
    owner = item["owner"]
    return {
        index_key: f"{owner}#{item[attribute]}"
        for attribute, (_, index_key, _) in INDEXES.items()
        if attribute is not None and item.get(attribute) is not None
    }


class ResultsStore:
    def __init__(self, table: Any, retention_days: int = 365) -> None:
        """``table``: a boto3 DynamoDB ``Table`` resource; items expire (TTL) after ``retention_days``."""
        self._table = table
        self._retention_s = retention_days * 86_400

    def _stored(self, item: Result) -> dict[str, Any]:
        return _to_dynamo({**item, **scoped_attributes(item), "expires_at": int(time.time()) + self._retention_s})

    def put_final(self, item: Result) -> bool:
        """Write a classified/rejected result; False if an equal or newer final result exists."""
        try:
            self._table.put_item(
                Item=self._stored(item),
                ConditionExpression="attribute_not_exists(pk) OR #s = :failed OR sequencer < :seq",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":failed": FAILED, ":seq": item["sequencer"]},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def put_failed(self, item: Result) -> bool:
        """Record that an object went to the dead-letter queue, unless any result exists (a final one,
        or the `failed` already recorded and perhaps notified)."""
        try:
            self._table.put_item(
                Item=self._stored({**item, "status": FAILED}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def claim_upload(self, object_ref: str, result_id: str) -> bool:
        """Whether ``result_id`` is the upload its key's form was used for: the first version of the
        key to be claimed, or the same one again (a redelivery). The key of a form is unique to it."""
        try:
            self._table.put_item(
                Item={
                    "pk": f"form#{hashlib.sha256(object_ref.encode()).hexdigest()[:32]}",
                    "upload": result_id,
                    "expires_at": int(time.time()) + self._retention_s,
                },
                ConditionExpression="attribute_not_exists(pk) OR upload = :id",
                ExpressionAttributeValues={":id": result_id},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def get(self, result_id: str) -> Result:
        item = self.get_or_none(result_id)
        if item is None:
            raise ResultNotFoundError("no such result")
        return item

    def get_or_none(self, result_id: str) -> Result | None:
        item = self._table.get_item(Key={"pk": result_id}, ConsistentRead=True).get("Item")
        return None if item is None else cast(Result, _from_dynamo(item))

    # -- notifications: exactly one per stored status, from the reader's point of view ------------------
    # The result is stored first, then its notification is claimed (a short lease), published and
    # marked. A delivery that finds the result already stored but not marked publishes it then, so a
    # failed publish is retried instead of lost; a live lease makes a concurrent delivery wait.
    def claim_notification(self, result_id: str, status: Status, lease_s: int) -> str:
        now = int(time.time())
        try:
            self._table.update_item(
                Key={"pk": result_id},
                UpdateExpression="SET notify_lease = :until",
                ConditionExpression=(
                    "#s = :status AND attribute_not_exists(notified_at) "
                    "AND (attribute_not_exists(notify_lease) OR notify_lease < :now)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":status": status, ":now": now, ":until": now + lease_s},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            current = self.get_or_none(result_id)
            if current is None or current["status"] != status or "notified_at" in current:
                return NOTIFIED
            return BUSY
        return CLAIMED

    def mark_notified(self, result_id: str, status: Status) -> None:
        self._table.update_item(
            Key={"pk": result_id},
            UpdateExpression="SET notified_at = :t REMOVE notify_lease",
            ConditionExpression="#s = :status",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":status": status, ":t": now_iso()},
        )

    def release_notification(self, result_id: str, status: Status) -> None:
        try:
            self._table.update_item(
                Key={"pk": result_id},
                UpdateExpression="REMOVE notify_lease",
                ConditionExpression="#s = :status",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":status": status},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    def _query_scope(
        self, scope: str, attribute: str | None, value: str | None, limit: int, position: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        index, partition_attribute, sort_attribute = INDEXES[attribute]
        partition = scope if attribute is None else f"{scope}#{value}"
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": partition_attribute},
            "ExpressionAttributeValues": {":p": partition},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if position:
            result_id, sort_value = position
            kwargs["ExclusiveStartKey"] = {"pk": result_id, partition_attribute: partition, sort_attribute: sort_value}
        page = self._table.query(**kwargs)
        return [_from_dynamo(i) for i in page.get("Items", [])], page.get("LastEvaluatedKey")

    def list_scoped(
        self,
        scopes: Sequence[str],
        attribute: str | None = None,
        value: str | None = None,
        limit: int = 50,
        positions: Positions | None = None,
    ) -> tuple[list[Result], Positions | None]:
        """Newest first, the results of ``scopes`` (optionally those whose ``attribute`` equals ``value``).

        Returns the page and the positions to continue from (None when every scope is exhausted).
        """
        if attribute not in INDEXES:
            raise ValueError(f"cannot list results by {attribute!r}")
        sort_attribute = INDEXES[attribute][2]
        limit = max(1, min(limit, 100))
        positions = positions or {}
        pages = {
            scope: self._query_scope(scope, attribute, value, limit, positions.get(scope))
            for scope in scopes
            if positions.get(scope) != DONE
        }
        merged = sorted(
            ((item, scope) for scope, (items, _) in pages.items() for item in items),
            key=lambda pair: str(pair[0][sort_attribute]),
            reverse=True,
        )[:limit]
        taken = {scope: sum(1 for _, s in merged if s == scope) for scope in pages}
        after: Positions = {}
        for scope in scopes:
            if scope not in pages:
                after[scope] = DONE
                continue
            items, last_key = pages[scope]
            count = taken[scope]
            if count < len(items):
                last = items[count - 1] if count else None
                after[scope] = [last["pk"], last[sort_attribute]] if last else positions.get(scope)
            elif last_key is not None:
                after[scope] = [last_key["pk"], last_key[sort_attribute]]
            else:
                after[scope] = DONE
        more = any(p != DONE for p in after.values())
        return [cast(Result, item) for item, _ in merged], (after if more else None)
