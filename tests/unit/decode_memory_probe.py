"""Peak memory of decoding hostile images, measured in a process of its own (VmHWM, resident).

    python -m tests.unit.decode_memory_probe one FILE       # one downsize: prints the peak above baseline, MB
    python -m tests.unit.decode_memory_probe batch FILE...  # the pipeline's concurrent reads of them all:
                                                            # prints the whole process's peak, MB

Pillow allocates outside Python's allocator, so tracemalloc would not see it; the kernel's high-water
mark does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from functions.common.errors import TransientError
from functions.common.pipeline import ClassificationPipeline
from functions.common.s3_events import ObjectRef
from model.preprocessing import downsize_png

MAX_OBJECT_BYTES = 25 * 1024 * 1024


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Files:
    def fetch(self, ref: ObjectRef, max_bytes: int) -> bytes:
        return Path(ref.key).read_bytes()


class Unreachable:
    """The endpoint, store and notifier: refusing every call (only reading is measured)."""

    def classify(self, images: Any, deadline: Any = None) -> list[Any]:
        return [TransientError("not measured")] * len(images)


def main(mode: str, paths: list[str]) -> None:
    if mode == "one":
        data = Path(paths[0]).read_bytes()
        baseline = peak_mb()
        downsize_png(data, 512, MAX_OBJECT_BYTES)
        print(f"{peak_mb() - baseline:.0f}")
        return
    pipeline = ClassificationPipeline(Files(), Unreachable(), None, None, MAX_OBJECT_BYTES)  # type: ignore[arg-type]
    refs = [ObjectRef("b", p, None, str(i), None, "0A", "") for i, p in enumerate(paths)]
    decisions = pipeline.decide(refs)  # the batch function's concurrent, byte-budgeted reads
    assert all(isinstance(d, TransientError) for d in decisions.values()), decisions
    print(f"{peak_mb():.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
