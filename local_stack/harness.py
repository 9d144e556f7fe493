"""What a user of the local stack does with it, in one client: drop images into the bucket, wait for
their results, read the notifications, sign in. The demo, the benchmarks, the soak and the tests
all use it, instead of each wiring the bucket, its prefix and the tables again."""

from __future__ import annotations

import json
import time
from functools import cached_property
from typing import Any, Protocol

from functions.common.ownership import scope_of_key
from local_stack.template import Template


class Deployment(Protocol):
    """What the harness uses of a local deployment (``local_stack.stack.LocalDeployment``)."""

    template: Template
    notifications_queue_url: str
    demo_username: str
    demo_password: str

    def client(self, service: str) -> Any: ...

    def resource(self, service: str) -> Any: ...

    def pollers_busy(self) -> bool: ...


FINAL: tuple[str, ...] = ("classified", "rejected")


class Harness:
    def __init__(self, stack: Deployment) -> None:
        self.stack = stack
        self.bucket = stack.template.ref("UploadBucket")
        self.prefix = stack.template.parameter("UploadPrefix")

    @cached_property
    def s3(self) -> Any:
        return self.stack.client("s3")

    @cached_property
    def sqs(self) -> Any:
        return self.stack.client("sqs")

    @cached_property
    def results_table(self) -> Any:
        return self.stack.resource("dynamodb").Table(self.stack.template.ref("ResultsTable"))

    @cached_property
    def cognito(self) -> Any:
        return self.stack.client("cognito-idp")

    def key(self, name: str) -> str:
        """The object key of a bucket drop named ``name`` (under the upload prefix: a shared result)."""
        return f"{self.prefix}{name}"

    def put(self, key: str, data: bytes) -> str:
        """Drop ``data`` into the bucket at ``key``; the new version's ETag."""
        return str(self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)["ETag"].strip('"'))

    def upload(self, key: str, data: bytes) -> str:
        """Drop ``data`` into the bucket at ``key``; the key."""
        self.put(key, data)
        return key

    def results_for(self, key: str) -> list[dict[str, Any]]:
        """Every result stored for an uploaded object key, in the owner scope its key gives."""
        scope = scope_of_key(key, self.prefix)
        items: list[dict[str, Any]] = self.results_table.query(
            IndexName="ByOwnerObject",
            KeyConditionExpression="owner_object = :o",
            ExpressionAttributeValues={":o": f"{scope}#{self.bucket}/{key}"},
        )["Items"]
        return items

    def wait_for_results(
        self, keys: list[str], statuses: tuple[str, ...] = FINAL, timeout_s: float = 60
    ) -> dict[str, dict[str, Any]]:
        """Poll until every key has a result in ``statuses`` (or the timeout); key -> that result."""
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(found) < len(keys):
            for key in keys:
                if key not in found:
                    items = [i for i in self.results_for(key) if i["status"] in statuses]
                    if items:
                        found[key] = items[0]
            time.sleep(0.2)
        return found

    def wait_idle(self, timeout_s: float = 30) -> None:
        """Until the ingest queue is empty and no poller is mid-batch."""
        queue = self.stack.template.ref("IngestQueue")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            attrs = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
            waiting = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            if waiting == 0 and not self.stack.pollers_busy():
                return
            time.sleep(0.2)
        raise TimeoutError("ingest queue did not drain")

    def drain_notifications(self) -> list[dict[str, Any]]:
        """Every SNS notification the local subscriber queue has received so far (then deleted)."""
        received: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.stack.notifications_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages:
                return received
            for message in messages:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.stack.notifications_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def id_token(self, username: str | None = None, password: str | None = None) -> str:
        """A Cognito ID token (the demo user's by default), as the web client signs in."""
        result = self.cognito.initiate_auth(
            ClientId=self.stack.template.ref("UserPoolClient"),
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={
                "USERNAME": username or self.stack.demo_username,
                "PASSWORD": password or self.stack.demo_password,
            },
        )
        return str(result["AuthenticationResult"]["IdToken"])
