from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.faults import FaultSwitch
from local_stack.stack import LocalStack
from model.build import DEFAULT_CHECKPOINT, build
from model.runtime import Predictor
from model.serve import EndpointApp


@pytest.fixture(scope="session")
def bundled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled default model, exported to ONNX by the project's own build command."""
    out = tmp_path_factory.mktemp("bundled")
    build(DEFAULT_CHECKPOINT, out, ("onnx",))
    return out / "artifacts"


@pytest.fixture(scope="session")
def faults(bundled_model: Path) -> FaultSwitch:
    return FaultSwitch(EndpointApp(Predictor.load(bundled_model)))


@pytest.fixture(scope="session")
def stack(bundled_model: Path, faults: FaultSwitch) -> Iterator[LocalStack]:
    with LocalStack(bundled_model, batching_window_s=0.3, retry_delay_s=0, endpoint_app=faults) as running:
        yield running


class Helpers:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.s3 = stack.client("s3")
        self.sqs = stack.client("sqs")
        self.bucket = stack.template.ref("UploadBucket")
        self.prefix = stack.template.parameter("UploadPrefix")

    def upload(self, key: str, data: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def results_for(self, key: str) -> list[dict[str, Any]]:
        return self.stack.results_for(key)

    def wait_for(
        self, keys: list[str], statuses: tuple[str, ...] = ("classified", "rejected"), timeout: float = 60
    ) -> dict[str, dict[str, Any]]:
        return self.stack.wait_for_results(keys, statuses, timeout)

    def wait_idle(self, timeout: float = 30) -> None:
        """Until the ingest queue is empty and the poller is not mid-batch."""
        queue = self.stack.template.ref("IngestQueue")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            attrs = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
            if (
                int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0
                and not self.stack.pollers_busy()
            ):
                return
            time.sleep(0.2)
        raise TimeoutError("ingest queue did not drain")

    def notifications(self) -> list[dict[str, Any]]:
        return self.stack.drain_notifications()


@pytest.fixture
def aws(stack: LocalStack) -> Helpers:
    helpers = Helpers(stack)
    helpers.wait_idle()
    helpers.notifications()  # start each test with no leftover notifications
    return helpers
