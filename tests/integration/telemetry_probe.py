"""Run both Lambdas as AWS runs them, with X-Ray on, and keep every trace document they emit.

Started by test_telemetry.py in a fresh process (the X-Ray SDK picks its Lambda mode from the
environment at import): ``python -m tests.integration.telemetry_probe SPEC.json OUT.json``. SPEC names
a batch event, the object keys an S3 read timeout is injected for, and the API events to replay; OUT
receives the trace documents and the handlers' answers. Logs go to stdout, as in Lambda.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from botocore.exceptions import ReadTimeoutError

from local_stack.runner import LocalContext


class CapturingEmitter(UDPEmitter):
    """The SDK's emitter, but the documents are kept instead of sent to the daemon."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.documents.append(entity.serialize())


def main(spec_path: Path, out_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    emitter = CapturingEmitter()
    xray_recorder.configure(emitter=emitter, streaming_threshold=1)

    from functions.api import app as api
    from functions.classify_batch import app as batch

    def read_timeout(request: Any, **_: Any) -> None:
        if any(key in request.url for key in spec["timeout_keys"]):
            raise ReadTimeoutError(endpoint_url=request.url)

    batch.pipeline.objects._s3.meta.events.register("before-send.s3.GetObject", read_timeout)  # type: ignore[attr-defined]
    answers: dict[str, Any] = {"batch": batch.lambda_handler(spec["batch_event"], LocalContext("batch"))}  # type: ignore[arg-type]
    answers["api"] = [api.lambda_handler(event, LocalContext("api")) for event in spec["api_events"]]  # type: ignore[arg-type]
    out_path.write_text(json.dumps({"documents": emitter.documents, "answers": answers}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
