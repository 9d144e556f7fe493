"""Fault injection for the local stack: the ordinary faults of AWS, on demand and reproducible.

``--faults SPEC`` is comma-separated ``name=probability``:

- ``endpoint_5xx``: an endpoint invocation answers like a failing model (a ModelError with a 500);
- ``slow_endpoint``: an invocation answers after ``SLOW_S``, past the function's endpoint read timeout;
- ``s3_timeout``: a GetObject of the batch function times out (botocore's ReadTimeoutError);
- ``crash``: the batch function's process dies mid-batch, after part of its work (it has stored an
  object's result but not yet published its notification); Lambda then retries the whole batch.

``--seed`` makes the draws reproducible. ``FaultSwitch.status`` forces every invocation to fail with
that status (for tests).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ReadTimeoutError

KNOWN = ("endpoint_5xx", "slow_endpoint", "s3_timeout", "crash")
SLOW_S = 3.0
# With faults on, the functions give the endpoint this read timeout, so ``slow_endpoint`` trips it.
FAULTY_ENDPOINT_READ_TIMEOUT_S = 2


class FunctionCrashed(BaseException):
    """The function's process died (out of memory, a segfault): nothing after it runs."""


@dataclass
class FaultPlan:
    probabilities: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.probabilities) - set(KNOWN)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(KNOWN)}")
        self._random = random.Random(self.seed)  # noqa: S311 - fault draws, not secrets
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> FaultPlan:
        """``"endpoint_5xx=0.2,s3_timeout=0.1"`` -> a plan."""
        probabilities = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            probabilities[name.strip()] = float(value)
        return cls(probabilities, seed)

    def fires(self, name: str) -> bool:
        with self._lock:
            hit = self._random.random() < self.probabilities.get(name, 0.0)
            if hit:
                self.injected[name] = self.injected.get(name, 0) + 1
        return hit

    # -- hooks into a batch function's module (a fresh "container") ------------------------------------
    def install(self, module: Any) -> None:
        """Wire ``s3_timeout`` and ``crash`` into a freshly imported batch function module."""
        pipeline = getattr(module, "pipeline", None)
        if pipeline is None or not hasattr(pipeline.objects, "_s3"):
            return

        def read_timeout(request: Any, **_: Any) -> None:
            if self.fires("s3_timeout"):
                raise ReadTimeoutError(endpoint_url=request.url)

        pipeline.objects._s3.meta.events.register("before-send.s3.GetObject", read_timeout)
        publish = pipeline.notifier.publish

        def publish_or_die(result: dict[str, Any]) -> None:
            if self.fires("crash"):
                raise FunctionCrashed("injected crash between storing a result and notifying it")
            publish(result)

        pipeline.notifier.publish = publish_or_die


class FaultSwitch:
    """Wraps the endpoint's WSGI app: failing while ``status`` is set, and as ``plan`` draws."""

    def __init__(self, app: Callable[..., Iterable[bytes]], plan: FaultPlan | None = None) -> None:
        self.app = app
        self.plan = plan or FaultPlan()
        self.status: int | None = None
        self.failed_calls = 0

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").endswith("/invocations"):
            return self.app(environ, start)
        if self.plan.fires("slow_endpoint"):
            time.sleep(SLOW_S)
        status = self.status or (500 if self.plan.fires("endpoint_5xx") else None)
        if status is None:
            return self.app(environ, start)
        self.failed_calls += 1
        message = f"injected failure {status}"
        body = json.dumps(
            {
                "ErrorCode": "SERVER_ERROR_FROM_MODEL" if status >= 500 else "CLIENT_ERROR_FROM_MODEL",
                "OriginalStatusCode": status,
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
