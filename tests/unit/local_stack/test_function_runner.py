"""The local stack runs handlers as Lambda does: one invocation at a time per container."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from local_stack.runner import FunctionRunner, RunnerPool
from tests.unit.conftest import World


class Overlap:
    """Replaces a loaded handler: records which containers run at once."""

    def __init__(self, meet: threading.Barrier | None = None) -> None:
        self.meet = meet
        self.running: set[int] = set()
        self.most = 0
        self.containers: set[int] = set()
        self._lock = threading.Lock()

    def install(self, module: Any) -> None:
        container = id(module)

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            with self._lock:
                self.running.add(threading.get_ident())
                self.most = max(self.most, len(self.running))
                self.containers.add(container)
            if self.meet is not None:
                self.meet.wait(timeout=30)  # every invocation at once, or a BrokenBarrierError
            else:
                time.sleep(0.2)
            with self._lock:
                self.running.discard(threading.get_ident())
            return {"statusCode": 200}

        module.lambda_handler = handler


def _at_once(invoke: Callable[[dict[str, Any]], Any], count: int) -> list[Any]:
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(invoke({}))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_one_container_runs_one_invocation_at_a_time(world: World) -> None:
    overlap = Overlap()
    runner = FunctionRunner(world.template, "ApiFunction", {}, on_load=overlap.install)
    _at_once(runner.invoke, 3)
    assert overlap.most == 1


def test_a_pool_serves_concurrent_requests_from_containers_of_their_own(world: World) -> None:
    overlap = Overlap(threading.Barrier(3))
    runners = [FunctionRunner(world.template, "ApiFunction", {}, on_load=overlap.install) for _ in range(3)]
    for runner in runners:
        runner.handler()  # imported first, one at a time: a cold import must not eat the barrier's wait
    pool = RunnerPool(iter(runners).__next__, 3)
    assert _at_once(pool.invoke, 3) == [{"statusCode": 200}] * 3
    assert (overlap.most, len(overlap.containers)) == (3, 3)
