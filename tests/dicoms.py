"""DICOM test files built in memory with pydicom, carrying a full set of patient identifiers."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

PHI = {
    "PatientName": "Smith^John^Q",
    "PatientID": "MRN-00123456",
    "PatientBirthDate": "19511203",
    "AccessionNumber": "ACC-98765",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "Doe^Jane",
}


def dicom(
    pixels8: npt.NDArray[np.uint8],
    *,
    monochrome1: bool = False,
    syntax: str = ExplicitVRLittleEndian,
    windowed: bool = True,
    **tags: Any,
) -> bytes:
    """A 12-bit CR/DX image whose Modality LUT and window give back exactly ``pixels8`` / 255.

    Stored 12-bit values are 16 v (MONOCHROME2) or 4080 - 16 v (MONOCHROME1); Rescale Slope 1/16 brings
    them to 0..255, and Window Center 128, Width 256 maps that range linearly onto 0..1.
    """
    v = pixels8.astype(np.uint16)
    stored = (4080 - 16 * v) if monochrome1 else 16 * v
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.Modality = "DX"
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = "0.0625", "0"
    if windowed:
        ds.WindowCenter, ds.WindowWidth = "128", "256"
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = stored.astype(np.uint16).tobytes()
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


SYNTAXES = {"explicit": ExplicitVRLittleEndian, "rle": RLELossless, "jpeg2000": JPEG2000Lossless}


def transcode(data: bytes, gdcm_syntax: str) -> bytes:
    """``data`` re-encoded by GDCM into another transfer syntax (e.g. JPEG Lossless, which pydicom
    cannot encode)."""
    import tempfile
    from pathlib import Path

    import gdcm

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "in.dcm", Path(folder) / "out.dcm"
        source.write_bytes(data)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(source))
        assert reader.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, gdcm_syntax)))
        change.SetInput(reader.GetImage())
        assert change.Change()
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(target))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()
        return target.read_bytes()


def variants(pixels8: npt.NDArray[np.uint8]) -> dict[str, Callable[[], bytes]]:
    """Every encoding of ``pixels8`` the decoders must read, each built when called: both photometric
    interpretations, and RLE, JPEG 2000, JPEG Lossless and JPEG-LS compression."""
    return {
        "monochrome2": lambda: dicom(pixels8),
        "monochrome1": lambda: dicom(pixels8, monochrome1=True),
        "rle": lambda: dicom(pixels8, syntax=SYNTAXES["rle"]),
        "jpeg2000": lambda: dicom(pixels8, syntax=SYNTAXES["jpeg2000"]),
        "jpeg_lossless": lambda: transcode(dicom(pixels8), "JPEGLosslessProcess14_1"),
        "jpeg_ls": lambda: transcode(dicom(pixels8), "JPEGLSLossless"),
    }


def sr_values(report: Dataset) -> dict[str, Any]:
    """A Structured Report's top-level content items by their meaning: text, the number, or the
    referenced instance's UID."""
    out: dict[str, Any] = {}
    for item in report.ContentSequence:
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if "TextValue" in item:
            out[name] = item.TextValue
        elif "MeasuredValueSequence" in item:
            out[name] = float(item.MeasuredValueSequence[0].NumericValue)
        elif "ReferencedSOPSequence" in item:
            out[name] = item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    return out
