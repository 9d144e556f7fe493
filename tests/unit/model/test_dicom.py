"""DICOM decoding: the standard's pixel pipeline, every refusal with its reason, and no PHI out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

from model.core import errors
from model.core.decoding import sniff_format
from model.core.dicom import dicom_to_gray, read_header, study_facts
from model.core.downsize import downsize_png
from model.core.preprocessing import decode_gray
from model.serving.runtime import Predictor
from tests import dicoms, images

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "covid-2.png"
PIXELS = np.asarray(Image.open(SAMPLE).convert("L"))


def _gray(data: bytes) -> np.ndarray:
    return np.asarray(dicom_to_gray(data, 64_000_000, 32)[0])


VARIANTS = dicoms.variants(PIXELS)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_gives_back_the_pngs_pixels(variant: str) -> None:
    assert np.array_equal(_gray(VARIANTS[variant]()), PIXELS)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_classified_like_the_png(variant: str, tiny_model_dir: Path) -> None:
    predictor = Predictor.load(tiny_model_dir)
    png, dcm = predictor.predict([SAMPLE.read_bytes(), VARIANTS[variant]()]).items  # type: ignore[attr-defined]
    assert png.label == dcm.label
    for label, p in png.probabilities.items():
        assert dcm.probabilities[label] == pytest.approx(p, abs=0.01)


def test_dicom_is_recognised_by_its_magic_whatever_its_name() -> None:
    assert sniff_format(dicoms.dicom(PIXELS)) == "DICOM"
    assert decode_gray(dicoms.dicom(PIXELS), 64).shape == (64, 64)


def test_the_window_comes_before_the_monochrome1_inversion() -> None:
    # Window 0..127 of the 0..255 modality values; inverting first would window the negative.
    data = dicoms.dicom(PIXELS, monochrome1=True, WindowCenter="64", WindowWidth="128")
    # MONOCHROME1 stores 4080 - 16 v, so the modality values are 255 - v.
    windowed = np.clip(((255.0 - PIXELS) - 63.5) / 127.0 + 0.5, 0.0, 1.0)
    expected = ((1.0 - windowed) * 255.0 + 0.5).astype(np.uint8)
    assert np.abs(_gray(data).astype(int) - expected).max() <= 1


def test_without_a_window_the_images_own_range_is_used_and_padding_left_out() -> None:
    padded = PIXELS.copy()
    data = dicoms.dicom(padded, windowed=False, PixelPaddingValue=0)
    gray = _gray(data)
    valid = padded > 0
    low, high = padded[valid].min(), padded[valid].max()
    expected = ((padded.astype(float) - low) / (high - low) * 255 + 0.5).clip(0, 255).astype(np.uint8)
    assert np.abs(gray[valid].astype(int) - expected[valid]).max() <= 1
    assert (gray[~valid] == 0).all()


@pytest.mark.parametrize(
    ("tags", "error", "reason"),
    [
        ({"Modality": "CT"}, errors.UnsupportedModalityError, "unsupported_modality"),
        ({"ViewPosition": "LL"}, errors.NotFrontalError, "not_frontal"),
        ({"BodyPartExamined": "ABDOMEN"}, errors.NotChestError, "not_chest"),
        ({"NumberOfFrames": "2"}, errors.MultiFrameError, "multi_frame"),
        ({"PhotometricInterpretation": "PALETTE COLOR"}, errors.UnsupportedPhotometricError, "unsupported_photometric"),
    ],
)
def test_what_is_not_a_frontal_chest_radiograph_is_refused_with_its_reason(
    tags: dict[str, str], error: type[errors.InvalidImageError], reason: str
) -> None:
    with pytest.raises(error) as raised:
        downsize_png(dicoms.dicom(PIXELS, **tags))
    assert raised.value.reason == reason


def test_missing_tags_are_no_reason_to_refuse() -> None:
    data = dicoms.dicom(PIXELS, Modality="", ViewPosition="", BodyPartExamined="")
    assert np.array_equal(_gray(data), PIXELS)


def test_an_undecodable_transfer_syntax_is_refused_with_its_uid() -> None:
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicoms.dicom(PIXELS)))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML  # a video syntax: neither pydicom nor GDCM decodes it
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3 not really mpeg-2"])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(errors.UnsupportedTransferSyntaxError, match=str(MPEG2MPML)):
        downsize_png(buffer.getvalue())


def test_no_patient_identifier_leaves_the_decoder() -> None:
    out: list[str] = []
    _, summary = dicom_to_gray(dicoms.dicom(PIXELS), 64_000_000, 32)
    out.append(repr(summary))
    out.append(downsize_png(dicoms.dicom(PIXELS)).decode("latin-1"))
    for tags in ({"Modality": "CT"}, {"ViewPosition": "LL"}, {"BodyPartExamined": "ABDOMEN"}, {"NumberOfFrames": "2"}):
        with pytest.raises(errors.InvalidImageError) as raised:
            downsize_png(dicoms.dicom(PIXELS, **tags))
        out.append(str(raised.value))
    text = "\n".join(out)
    for value in dicoms.PHI.values():
        for part in (p for p in value.split("^") if len(p) > 2):
            assert part not in text


def test_a_png_still_decodes_as_before() -> None:
    assert decode_gray(images.png(96), 64).shape == (64, 64)


def test_a_studys_date_modality_view_and_body_part_are_let_out_and_nothing_that_names_the_patient() -> None:
    header = read_header(dicoms.dicom(images.chest(64, seed=1), StudyDate="20260314"))
    facts = study_facts(header)
    assert facts == {"study_date": "2026-03-14", "modality": "DX", "view": "PA", "body_part": "CHEST"}
    assert not any(str(value) in str(facts) for value in dicoms.PHI.values())


def test_a_malformed_study_date_is_left_out() -> None:
    header = read_header(dicoms.dicom(images.chest(64, seed=1), StudyDate="14/03/26"))
    assert "study_date" not in study_facts(header)
