"""A peer's corpus: every file pydicom ships in ``pydicom/data/test_files`` (CT, MR, RT, SR, DICOMDIRs,
every transfer syntax, files broken on purpose) through the Lambdas' decoder ends in a typed refusal
with an accurate reason, never an untyped error, within the memory and time bounds; and, relabelled as
a frontal chest DX, through the whole pixel pipeline (decoders, Modality LUT, VOI) the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom.data
import pytest

from model.core import errors
from tests.unit.conftest import run_probe

CORPUS = Path(pydicom.data.__file__).parent / "test_files"
PEAK_MB = 150
SECONDS_PER_FILE = 2.0
REASONS = {
    cls.reason
    for cls in (
        errors.NotAnImageError,
        errors.TruncatedImageError,
        errors.DecompressionBombError,
        errors.ImageTooSmallError,
        errors.EmptyImageError,
        errors.UnsupportedTransferSyntaxError,
        errors.MultiFrameError,
        errors.UnsupportedPhotometricError,
        errors.UnsupportedModalityError,
        errors.NotFrontalError,
        errors.NotChestError,
        errors.NoPixelDataError,
        errors.InvalidDicomError,
    )
} | {"decoded"}


@pytest.fixture(scope="module")
def corpus() -> tuple[dict[str, dict[str, Any]], float]:
    lines = [json.loads(line) for line in run_probe("corpus", str(CORPUS), timeout_s=600).splitlines()]
    return {row["file"]: row for row in lines[:-1]}, float(lines[-1]["peak_mb"])


def test_the_corpus_is_pydicoms_whole_test_files_folder(corpus: tuple[dict[str, dict[str, Any]], float]) -> None:
    assert len(corpus[0]) == sum(1 for p in CORPUS.rglob("*") if p.is_file()) > 150


@pytest.mark.parametrize("path", ["outcome", "as_chest"])
def test_every_file_ends_in_a_typed_refusal_or_an_image(
    corpus: tuple[dict[str, dict[str, Any]], float], path: str
) -> None:
    untyped = {name: row[path] for name, row in corpus[0].items() if row[path] not in REASONS}
    assert untyped == {}


def test_a_bad_value_representation_is_invalid_dicom(corpus: tuple[dict[str, dict[str, Any]], float]) -> None:
    assert corpus[0]["badVR.dcm"]["outcome"] == "invalid_dicom"


@pytest.mark.parametrize(
    "name",
    [
        "dicomdirtests/DICOMDIR",
        "dicomdirtests/DICOMDIR-implicit",
        "priv_SQ.dcm",
        "no_meta_group_length.dcm",
        "test-SR.dcm",
        "rtplan.dcm",
    ],
)
def test_objects_without_an_image_say_so(corpus: tuple[dict[str, dict[str, Any]], float], name: str) -> None:
    assert corpus[0][name]["outcome"] == "no_pixel_data"


def test_a_file_meta_without_transfer_syntax_is_invalid(corpus: tuple[dict[str, dict[str, Any]], float]) -> None:
    assert corpus[0]["meta_missing_tsyntax.dcm"]["outcome"] == "invalid_dicom"


def test_most_images_decode_through_the_whole_pixel_pipeline(corpus: tuple[dict[str, dict[str, Any]], float]) -> None:
    assert sum(row["as_chest"] == "decoded" for row in corpus[0].values()) >= 45


def test_no_file_takes_long(corpus: tuple[dict[str, dict[str, Any]], float]) -> None:
    assert max(row["seconds"] for row in corpus[0].values()) <= SECONDS_PER_FILE


def test_the_whole_corpus_stays_within_memory(corpus: tuple[dict[str, dict[str, Any]], float]) -> None:
    assert corpus[1] <= PEAK_MB
