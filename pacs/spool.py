"""What the receiver acknowledged, on disk until it is in the bucket.

An instance is written as ``<id>.key`` (its object key) then ``<id>.part`` (its bytes), each flushed
to disk, and ``<id>.part`` is renamed ``<id>.dcm``: a ``.dcm`` therefore always has its key and all
its bytes. The receiver answers C-STORE success only after that rename, and the uploader deletes both
files only after the upload; whatever a crash leaves, a restart uploads (``pending``). A ``.part``
without its ``.dcm`` was never acknowledged and is removed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spooled:
    path: Path
    key: str

    def read(self) -> bytes:
        return self.path.read_bytes()


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for orphan in directory.glob("*.part"):
            orphan.unlink()

    def put(self, key: str, data: bytes) -> Spooled:
        """Store ``data`` for ``key`` durably; return once it would survive a crash."""
        name = uuid.uuid4().hex
        _write_durably(self.directory / f"{name}.key", key.encode())
        part = self.directory / f"{name}.part"
        _write_durably(part, data)
        final = part.rename(self.directory / f"{name}.dcm")
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself
        finally:
            os.close(directory)
        return Spooled(final, key)

    def pending(self) -> Iterator[Spooled]:
        """Every acknowledged instance not yet uploaded, oldest first."""
        for path in sorted(self.directory.glob("*.dcm"), key=lambda p: p.stat().st_mtime):
            key_file = path.with_suffix(".key")
            if key_file.is_file():
                yield Spooled(path, key_file.read_text())

    def done(self, item: Spooled) -> None:
        item.path.unlink(missing_ok=True)
        item.path.with_suffix(".key").unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for _ in self.pending())
