"""An SQS event source mapping: Lambda's batching and partial-batch-failure semantics, locally.

Receives up to BatchSize messages within MaximumBatchingWindowInSeconds, invokes the function with
an SQS event, deletes what succeeded and leaves the reported failures (or the whole batch when the
function raises) for redelivery. The queue's own redrive policy moves a message to the dead-letter
queue after maxReceiveCount receives, as in AWS. One deviation, for speed: a failed message is made
visible again after ``retry_delay`` seconds instead of the queue's visibility timeout.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from local_stack.faults import FunctionCrashed
from local_stack.runner import FunctionRunner

logger = logging.getLogger(__name__)


def to_lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        runner: FunctionRunner,
        batch_size: int = 10,
        batching_window_s: float = 5.0,
        retry_delay_s: int = 1,
        region: str = "us-east-1",
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._runner = runner
        self._batch_size = batch_size
        self._window = batching_window_s
        self._retry_delay = retry_delay_s
        self._region = region
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqs-poller", daemon=True)
        self.invocations = 0
        self.crashes = 0
        self.busy = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self._window
        while len(messages) < self._batch_size and not self._stop.is_set():
            wait = 1 if not messages else max(0, min(1, int(deadline - time.monotonic())))
            page = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._batch_size - len(messages),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages += page
            if messages and (time.monotonic() >= deadline or not page):
                break
        return messages

    def poll_once(self) -> int:
        messages = self._receive_batch()
        if not messages:
            return 0
        self.busy.set()
        try:
            event = {"Records": [to_lambda_record(m, self._queue_arn, self._region) for m in messages]}
            try:
                response = self._runner.invoke(event) or {}
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            except FunctionCrashed:
                logger.warning("function crashed (injected): the whole batch will be retried")
                self.crashes += 1
                self._runner.restart()  # a crashed Lambda's next invocation gets a fresh container
                failed = {m["MessageId"] for m in messages}
            except Exception:
                logger.exception("function raised: the whole batch will be retried")
                failed = {m["MessageId"] for m in messages}
            self.invocations += 1
            for message in messages:
                try:
                    if message["MessageId"] in failed:
                        self._sqs.change_message_visibility(
                            QueueUrl=self._queue_url,
                            ReceiptHandle=message["ReceiptHandle"],
                            VisibilityTimeout=self._retry_delay,
                        )
                    else:
                        self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
                except ClientError as exc:
                    # The invocation outlived the visibility timeout and the message was received again
                    # (a short --visibility-timeout makes this common): that delivery settles it.
                    if exc.response["Error"]["Code"] != "ReceiptHandleIsInvalid":
                        raise
        finally:
            self.busy.clear()
        return len(messages)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("poller error")
                time.sleep(0.5)
