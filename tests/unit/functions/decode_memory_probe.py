"""Peak memory of decoding hostile images, measured in a process of its own (VmHWM, resident).

    python -m tests.unit.functions.decode_memory_probe one FILE       # one downsize: prints the peak above baseline, MB
    python -m tests.unit.functions.decode_memory_probe batch FILE...  # the pipeline's concurrent reads of them all:
                                                            # prints the whole process's peak, MB
    python -m tests.unit.functions.decode_memory_probe prepare FILE   # what a Lambda does with one upload (cost,
                                                            # budget, decode): JSON of its outcome, the
                                                            # peak above baseline (MB) and the seconds
    python -m tests.unit.functions.decode_memory_probe corpus DIR     # every file under DIR through the Lambdas'
                                                            # decoder, and through the pixel pipeline as
                                                            # if each were a chest DX: JSON lines, then
                                                            # the process's peak above baseline

Pillow allocates outside Python's allocator, so tracemalloc would not see it; the kernel's high-water
mark does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from functions.common.errors import ImageRejectedError, TransientError
from functions.common.pipeline import ClassificationPipeline
from functions.common.ports import FetchedObject
from functions.common.s3_events import ObjectRef
from model.core import dicom
from model.core.decoding import decode_cost
from model.core.downsize import downsize_png
from model.core.errors import InvalidImageError

MAX_OBJECT_BYTES = 25 * 1024 * 1024


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Files:
    def fetch(self, ref: ObjectRef, max_bytes: int) -> FetchedObject:
        return FetchedObject(Path(ref.key).read_bytes())


class Unreachable:
    """The endpoint, store and notifier: refusing every call (only reading is measured)."""

    def classify(self, images: Any, deadline: Any = None) -> list[Any]:
        return [TransientError("not measured")] * len(images)


def main(mode: str, paths: list[str]) -> None:
    if mode == "prepare":
        data = Path(paths[0]).read_bytes()
        import gdcm  # noqa: F401  (imported by the first DICOM decode: not part of what one file costs)
        import pydicom.pixels  # noqa: F401

        pipeline = ClassificationPipeline(Files(), Unreachable(), None, None, MAX_OBJECT_BYTES)  # type: ignore[arg-type]
        baseline, started = peak_mb(), time.perf_counter()
        try:
            pipeline.prepare(data)
            outcome = "decoded"
        except ImageRejectedError as exc:
            outcome = exc.reason
        seconds = time.perf_counter() - started
        try:
            cost_mb = decode_cost(data, MAX_OBJECT_BYTES) / 2**20
        except InvalidImageError:
            cost_mb = 0.0
        print(json.dumps({"outcome": outcome, "peak_mb": peak_mb() - baseline, "seconds": seconds, "cost_mb": cost_mb}))
        return
    if mode == "corpus":
        corpus(Path(paths[0]))
        return
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


def _outcome(decode: Any, data: bytes) -> str:
    try:
        decode(data)
    except InvalidImageError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001  (what the corpus test looks for: anything but a typed refusal)
        return f"untyped {type(exc).__name__}"
    return "decoded"


def _as_chest(data: bytes) -> None:
    """The pixel pipeline on ``data`` as if it were a frontal chest DX: every decoder and LUT path."""
    ds = dicom.read(data)
    for keyword, value in (("Modality", "DX"), ("ViewPosition", "PA"), ("BodyPartExamined", "CHEST")):
        setattr(ds, keyword, value)
    summary = dicom.DicomSummary.of(ds)
    dicom.check_acceptable(ds, summary, dicom.MAX_PIXELS, 1)
    dicom.to_unit_range(ds, dicom.stored_pixels(ds, summary))


def corpus(folder: Path) -> None:
    import warnings

    import gdcm  # noqa: F401
    import pydicom.pixels  # noqa: F401

    warnings.simplefilter("ignore")  # pydicom warns about each odd tag it reads
    baseline = peak_mb()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        started = time.perf_counter()
        served = _outcome(lambda d: downsize_png(d, 512, MAX_OBJECT_BYTES), data)
        as_chest = _outcome(_as_chest, data) if dicom.is_dicom(data) else served
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "file": path.relative_to(folder).as_posix(),
                    "outcome": served,
                    "as_chest": as_chest,
                    "seconds": seconds,
                }
            )
        )
    print(json.dumps({"peak_mb": peak_mb() - baseline}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
