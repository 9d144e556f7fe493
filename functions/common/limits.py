"""Per-user limits, so that one signed-in user cannot starve the others or flood the pipeline.

- **Requests**: each caller may make ``RequestsPerUserPerMinute`` API calls a minute. The stage
  throttle (20 req/s, burst 50) stays as the ceiling for all users together.
- **Uploads**: each caller may start ``UploadsPerUserPerHour`` classifications an hour: every
  ``POST /uploads`` form and every ``POST /classify?store=true`` counts one.
- **Single-use forms**: a presigned POST form may be posted again for its 300 s, each time a new
  version of its key. Its key is unique to the form, so the batch function classifies only the first
  version of a user's key (``ResultsStore.claim_upload``); a later one is ``rejected:
  upload_form_reused`` without being read. S3 has no policy condition that makes a form single-use.

The counters are fixed windows in the results table, one conditional ``UpdateItem`` a request:
``pk = limit#<sub>#<kind>#<window start>``, expiring (TTL) an hour after their window. They carry no
``owner``, so no index of the table holds them and no listing can see them.

Why not a WAF rate-based rule keyed on the Authorization header: it limits per token, not per user (a
user signs in again for a new token), starts at $5 a month for the web ACL, $1 a rule and $0.60 per
million requests (docs/security.md has the sources), and cannot run on the local stack. Why not a
usage plan: it needs an API key per user, provisioned and sent by the client. The counter costs one
on-demand write request per API call (docs/security.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from botocore.exceptions import ClientError

from functions.common.aws_errors import CONDITION_FAILED, aws_errors
from functions.common.errors import LimitExceededError

REQUESTS: Final = "requests"
UPLOADS: Final = "uploads"


@dataclass(frozen=True)
class Window:
    kind: str
    limit: int
    seconds: int


class Limiter(Protocol):
    def take(self, sub: str, window: Window) -> None:
        """Count one use of ``window`` for ``sub``; ``LimitExceededError`` when none is left."""


class TableLimiter:
    """Fixed-window counters in a DynamoDB table (a boto3 ``Table`` resource)."""

    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def take(self, sub: str, window: Window) -> None:
        now = self._clock()
        start = int(now // window.seconds) * window.seconds
        with aws_errors("counting the request", {CONDITION_FAILED: _over(window, start, now)}):
            self._table.update_item(
                Key={"pk": f"limit#{sub}#{window.kind}#{start}"},
                UpdateExpression="ADD used :one SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(used) OR used < :limit",
                ExpressionAttributeValues={
                    ":one": 1,
                    ":limit": window.limit,
                    ":expires": start + window.seconds + 3600,
                },
            )


def _over(window: Window, start: int, now: float) -> Callable[[ClientError], LimitExceededError]:
    def translate(exc: ClientError) -> LimitExceededError:
        retry_after = max(1, int(start + window.seconds - now))
        return LimitExceededError(
            f"at most {window.limit} {window.kind} per {window.seconds} s per user; retry in {retry_after} s",
            retry_after,
        )

    return translate
