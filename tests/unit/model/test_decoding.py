"""One sniff, one decoder per format (model.core.decoding)."""

from __future__ import annotations

import pytest

from model.core import decoding, dicom, errors
from tests import dicoms, images


@pytest.mark.parametrize(
    ("data", "decoder"),
    [
        (images.png(), decoding.PngDecoder),
        (images.jpeg(), decoding.JpegDecoder),
        (dicoms.dicom(images.chest(64)), decoding.DicomDecoder),
    ],
    ids=["png", "jpeg", "dicom"],
)
def test_the_magic_bytes_choose_the_decoder(data: bytes, decoder: type) -> None:
    assert isinstance(decoding.decoder_for(data), decoder)


def test_too_many_bytes_are_refused_before_the_format_is_looked_at() -> None:
    with pytest.raises(errors.ImageTooLargeError):
        decoding.decoder_for(b"not an image at all", max_bytes=4)


def test_a_dicom_is_sniffed_once_per_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = dicom.is_dicom
    monkeypatch.setattr(dicom, "is_dicom", lambda data: calls.append(1) or real(data))
    decoding.load_gray(dicoms.dicom(images.chest(64)), 64)
    assert len(calls) == 1
