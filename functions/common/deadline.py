"""How long the current invocation has left, from the Lambda context.

The time budget of the batch function (``Timeout`` 60 s in template.yaml), in one place:

- S3 reads, DynamoDB and SNS calls: connect 2 s, read 5 s, 3 attempts (``clients.AWS_CONFIG``).
- Endpoint: connect 2 s, read 15 s (ENDPOINT_READ_TIMEOUT_S), 2 attempts; a request is sent only if
  ``endpoint_call_budget_s`` (every attempt and the back-off) is left, otherwise its images wait for
  the next delivery as a transient error.
- Each object is settled (store, notify) only while ``SETTLE_S`` is left; the rest are retried.
- The ingest queue's visibility timeout (360 s) is 6x the function timeout, as Lambda asks, so a
  message is never redelivered while a slow invocation still works on it.

The API function (29 s, API Gateway's limit) makes one endpoint attempt and answers 503 with
``Retry-After`` when it fails.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

CONNECT_S: Final = 2
SETTLE_S: Final = 8.0


def endpoint_call_budget_s(read_timeout_s: int, attempts: int) -> float:
    """The time one endpoint request may take: every attempt to its timeouts, plus the back-off."""
    return attempts * (CONNECT_S + read_timeout_s) + 2.0


class Deadline(Protocol):
    def remaining_s(self) -> float: ...


class ContextDeadline:
    """Time left in a Lambda invocation."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def remaining_s(self) -> float:
        return float(self._context.get_remaining_time_in_millis()) / 1000.0


class NoDeadline:
    def remaining_s(self) -> float:
        return float("inf")
