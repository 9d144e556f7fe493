"""The results table: one item per uploaded object version, written with conditions.

Conditions make the table itself the guard against double work: a final result (classified or
rejected) is written only if none exists, if the stored one is ``failed``, or if the stored one came
from an older S3 event (smaller sequencer). ``failed`` never overwrites a final result.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any, Final

from botocore.exceptions import ClientError

from functions.common.errors import BadRequestError, NotFoundError

CLASSIFIED: Final = "classified"
REJECTED: Final = "rejected"
FAILED: Final = "failed"
STATUSES: Final = (CLASSIFIED, REJECTED, FAILED)
INDEXES: Final = {"status": "ByStatus", "label": "ByLabel", "day": "ByDay", "object_ref": "ByObject"}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = json.loads(json.dumps(item), parse_float=Decimal)
    return {k: v for k, v in converted.items() if v is not None}


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(item, default=lambda d: float(d) if d % 1 else int(d)))  # type: ignore[no-any-return]


def _encode_token(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key, default=str).encode()).decode() if key else None


def _decode_token(token: str) -> dict[str, Any]:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))  # type: ignore[no-any-return]
    except (ValueError, json.JSONDecodeError) as exc:
        raise BadRequestError("next_token is not valid") from exc


class ResultsStore:
    def __init__(self, table: Any) -> None:
        """``table``: a boto3 DynamoDB ``Table`` resource."""
        self._table = table

    def put_final(self, item: dict[str, Any]) -> bool:
        """Write a classified/rejected result; False if an equal or newer final result exists."""
        try:
            self._table.put_item(
                Item=_to_dynamo(item),
                ConditionExpression="attribute_not_exists(pk) OR #s = :failed OR sequencer < :seq",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":failed": FAILED, ":seq": item["sequencer"]},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_failed(self, item: dict[str, Any]) -> bool:
        """Record that an object went to the dead-letter queue, unless a final result exists."""
        try:
            self._table.put_item(
                Item=_to_dynamo({**item, "status": FAILED}),
                ConditionExpression="attribute_not_exists(pk) OR #s = :failed",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":failed": FAILED},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, result_id: str) -> dict[str, Any]:
        item = self._table.get_item(Key={"pk": result_id}).get("Item")
        if item is None:
            raise NotFoundError(f"no result {result_id}")
        return _from_dynamo(item)

    def final_exists(self, result_id: str) -> bool:
        item = self._table.get_item(
            Key={"pk": result_id}, ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"}
        ).get("Item")
        return item is not None and item.get("status") != FAILED

    def query(self, attribute: str, value: str, limit: int = 50, next_token: str | None = None) -> dict[str, Any]:
        """Newest first, by status, label, day (YYYY-MM-DD) or object_ref; paginated."""
        if attribute not in INDEXES:
            raise BadRequestError(f"cannot list results by {attribute!r}; use one of {', '.join(INDEXES)}")
        kwargs: dict[str, Any] = {
            "IndexName": INDEXES[attribute],
            "KeyConditionExpression": "#a = :v",
            "ExpressionAttributeNames": {"#a": attribute},
            "ExpressionAttributeValues": {":v": value},
            "ScanIndexForward": False,
            "Limit": max(1, min(limit, 100)),
        }
        if next_token:
            kwargs["ExclusiveStartKey"] = _decode_token(next_token)
        page = self._table.query(**kwargs)
        return {
            "items": [_from_dynamo(i) for i in page.get("Items", [])],
            "next_token": _encode_token(page.get("LastEvaluatedKey")),
        }
