"""Fault injection for the local endpoint: make it answer like a failing SageMaker model on demand."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


class FaultSwitch:
    """Wraps the endpoint's WSGI app; while ``status`` is set, every invocation fails with it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.status: int | None = None
        self.failed_calls = 0

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if self.status is None or not environ.get("PATH_INFO", "").endswith("/invocations"):
            return self.app(environ, start)
        self.failed_calls += 1
        message = f"injected failure {self.status}"
        body = json.dumps(
            {
                "ErrorCode": "SERVER_ERROR_FROM_MODEL" if self.status >= 500 else "CLIENT_ERROR_FROM_MODEL",
                "OriginalStatusCode": self.status,
                "OriginalMessage": message,
                "message": message,
            }
        ).encode()
        start(
            "424 Failed Dependency",
            [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "ModelError:"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]
