"""Small files built to cost a decoder far more than their size end in a clear refusal, within a
stated memory and time, each measured in a fresh process (tests/unit/functions/decode_memory_probe.py).

Before these bounds: a 398 KB deflated DICOM peaked at 885 MB, an 8000 x 8000 RLE DICOM of 2 MB at
1,044 MB, and a 121 KB progressive JPEG took 17 s (docs/decoding.md has the table).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from local_stack import hostile
from model.core import codestreams, errors
from model.core.decoding import decode_cost
from model.core.downsize import downsize_png
from tests.unit.conftest import run_probe


@dataclass(frozen=True)
class Hostile:
    make: Callable[[], bytes]
    outcome: str
    peak_mb: float
    seconds: float


RAMP = np.tile(np.arange(256, dtype=np.uint8), (300, 1))
CASES = {
    # Its inflated size counted 1 MB at a time, nothing kept: 8 MB measured (112-169 MB before).
    "deflate_bomb": Hostile(hostile.deflated_dicom_bomb, "decompression_bomb", 32, 3),
    "rle_8000": Hostile(lambda: hostile.rle_dicom(8000), "decompression_bomb", 40, 2),
    "j2k_codestream_larger_than_header": Hostile(lambda: hostile.j2k_dicom_lying(1000, 30000), "invalid_dicom", 40, 2),
    "progressive_scan_bomb": Hostile(hostile.progressive_scan_bomb, "decompression_bomb", 20, 1),
    "jpeg_segment_flood": Hostile(hostile.jpeg_many_segments, "decompression_bomb", 20, 1),
    "png_chunk_flood": Hostile(hostile.png_many_chunks, "decompression_bomb", 20, 1),
    "png_ztxt_bomb": Hostile(lambda: hostile.png_huge_metadata(b"zTXt"), "decompression_bomb", 20, 1),
    "png_iccp_bomb": Hostile(lambda: hostile.png_huge_metadata(b"iCCP"), "decompression_bomb", 20, 1),
    # Honest relatives that must still decode, within what their header lets the budget expect.
    "deflated_small": Hostile(lambda: hostile.deflated_dicom(RAMP), "decoded", 40, 2),
    "rle_5000_largest_allowed": Hostile(lambda: hostile.rle_dicom(5000), "decoded", 260, 8),
}


def probe(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_probe("prepare", str(path), timeout_s=120).strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("hostile")
    results = {}
    for name, case in CASES.items():
        path = folder / name
        path.write_bytes(case.make())
        results[name] = probe(path)
    return results


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.outcome != "decoded"])
def test_each_hostile_file_is_refused_with_its_reason(measured: dict[str, dict[str, Any]], name: str) -> None:
    assert measured[name]["outcome"] == CASES[name].outcome


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.outcome == "decoded"])
def test_honest_relatives_still_decode(measured: dict[str, dict[str, Any]], name: str) -> None:
    assert measured[name]["outcome"] == "decoded"


@pytest.mark.parametrize("name", list(CASES))
def test_peak_memory_stays_under_its_bound(measured: dict[str, dict[str, Any]], name: str) -> None:
    assert measured[name]["peak_mb"] <= CASES[name].peak_mb


@pytest.mark.parametrize("name", list(CASES))
def test_time_stays_under_its_bound(measured: dict[str, dict[str, Any]], name: str) -> None:
    assert measured[name]["seconds"] <= CASES[name].seconds


def test_the_largest_allowed_dicom_costs_no_more_than_the_budget_was_told(measured: dict[str, dict[str, Any]]) -> None:
    decoded = measured["rle_5000_largest_allowed"]
    assert decoded["peak_mb"] <= decoded["cost_mb"]


def test_a_dicom_cost_counts_bits_allocated() -> None:
    head8, body8 = hostile._dicom_header(1000, 1000, "1.2.840.10008.1.2.1", bits_allocated=8)
    head32, body32 = hostile._dicom_header(1000, 1000, "1.2.840.10008.1.2.1", bits_allocated=32)
    assert decode_cost(head32 + body32) > 3 * decode_cost(head8 + body8)


def test_a_scan_count_within_the_limit_passes() -> None:
    frame = codestreams.jpeg_frame(hostile.progressive_scan_bomb(256, repeats=0))
    assert frame.progressive
    assert 1 < frame.scans <= codestreams.MAX_JPEG_SCANS


def test_one_scan_over_the_limit_is_refused() -> None:
    scans = codestreams.jpeg_frame(hostile.progressive_scan_bomb(64, repeats=0)).scans
    bomb = hostile.progressive_scan_bomb(64, repeats=codestreams.MAX_JPEG_SCANS - scans + 1)
    with pytest.raises(errors.DecompressionBombError, match="scans"):
        downsize_png(bomb)
