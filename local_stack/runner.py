"""Run a Lambda handler of template.yaml in this process, the way the Lambda runtime would."""

from __future__ import annotations

import importlib
import importlib.util
import os
import queue
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Metrics

from local_stack.template import Template

# Each Lambda container imports its handler in a process of its own; here the pollers and the gateway
# share one process, and two threads importing the same packages for the first time can meet a
# partially initialised module (Powertools' data_classes did). One import at a time, as in Lambda.
_IMPORT_LOCK = threading.Lock()


class Invoker(Protocol):
    def invoke(self, event: dict[str, Any]) -> Any: ...


@dataclass
class LocalContext:
    """The parts of the Lambda context object that handlers and Powertools use."""

    function_name: str
    timeout_s: int = 60
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class FunctionRunner:
    def __init__(
        self,
        template: Template,
        logical_id: str,
        extra_env: dict[str, str],
        on_load: Callable[[Any], None] | None = None,
    ) -> None:
        self.logical_id = logical_id
        self.environment = {**template.function_environment(logical_id), **extra_env}
        self.timeout_s = int(template.function_setting(logical_id, "Timeout") or 3)
        self.memory_mb = int(template.function_setting(logical_id, "MemorySize") or 128)
        self._handler_path = template.function_handler(logical_id)
        self._handler: Callable[[dict[str, Any], Any], Any] | None = None
        self._on_load = on_load
        # A Lambda execution environment runs one invocation at a time, and handlers rely on it:
        # Powertools' resolver keeps the current event on its module-level app, so two requests
        # through one module at once read each other's event (a POST's handler saw a GET's empty body).
        self._busy = threading.Lock()

    def handler(self) -> Callable[[dict[str, Any], Any], Any]:
        with _IMPORT_LOCK:
            return self._load_handler()

    def _load_handler(self) -> Callable[[dict[str, Any], Any], Any]:
        if self._handler is None:
            # A fresh module object per runner, like a new Lambda container: its singletons read the
            # environment at import, and another local stack in this process keeps its own.
            os.environ.update(self.environment)
            module_name, _, attribute = self._handler_path.rpartition(".")
            spec = importlib.util.find_spec(module_name)
            if spec is None or spec.loader is None:
                raise ImportError(f"handler module {module_name} not found")
            module = importlib.util.module_from_spec(spec)
            # Registered, so that pydantic can resolve the module's postponed annotations.
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            if self._on_load is not None:
                self._on_load(module)
            self._handler = getattr(module, attribute)
        return self._handler

    def restart(self) -> None:
        """Forget the loaded handler: the next invocation imports it afresh (a new container)."""
        with _IMPORT_LOCK:
            self._handler = None

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._busy:
            return self._invoke(event)

    def _invoke(self, event: dict[str, Any]) -> Any:
        context = LocalContext(self.logical_id, self.timeout_s, self.memory_mb)
        try:
            with warnings.catch_warnings():
                # Powertools warns when an invocation (e.g. an s3:TestEvent) records no metric.
                warnings.filterwarnings("ignore", message="No application metrics to publish")
                return self.handler()(event, context)
        finally:
            # Metrics are disabled locally, so nothing flushes Powertools' shared metric buffer; left
            # alone it prints itself once it holds 100 values. Drop it, as CloudWatch would consume it.
            Metrics().clear_metrics()


class RunnerPool:
    """Warm containers of one function: concurrent requests each take one, as Lambda scales out."""

    def __init__(self, make: Callable[[], FunctionRunner], size: int) -> None:
        self._free: queue.Queue[FunctionRunner] = queue.Queue()
        for _ in range(size):
            self._free.put(make())

    def invoke(self, event: dict[str, Any]) -> Any:
        runner = self._free.get()
        try:
            return runner.invoke(event)
        finally:
            self._free.put(runner)
