"""A byte budget for concurrent decodes: large images wait for memory instead of exhausting it, and
one that could never fit is refused instead of let through alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from model.core.errors import DecompressionBombError


class ByteBudget:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()
        self.peak_held = 0

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        """Wait until ``amount`` bytes are free and hold them; refuse an amount over the capacity."""
        if amount > self.capacity:
            raise DecompressionBombError(
                f"decoding would need {amount // 2**20} MB; one decode may use at most {self.capacity // 2**20} MB"
            )
        with self._changed:
            self._changed.wait_for(lambda: self._free >= amount)
            self._free -= amount
            self.peak_held = max(self.peak_held, self.capacity - self._free)
        try:
            yield
        finally:
            with self._changed:
                self._free += amount
                self._changed.notify_all()
