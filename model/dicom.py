"""DICOM chest radiographs to 8-bit gray, in the order the standard gives, with nothing identifying out.

The pixel pipeline of PS3.3 C.7.6.3 and C.11, in this order: stored values (BitsStored and signed
pixels honoured, PixelPaddingValue excluded) -> Modality LUT (Rescale Slope and Intercept) -> VOI
(Window Center and Width, or a VOI LUT; without either, the image's own range) -> MONOCHROME1
inversion -> 8 bits. Inverting before the window, the ordering bug cornerstone3D fixed, would window
the negative.

Decoders, both under permissive licences: pydicom itself (uncompressed, RLE Lossless) and python-gdcm
(BSD: JPEG Lossless, the usual syntax of CR/DX, JPEG-LS, JPEG 2000 and baseline JPEG). One decoder for
every compressed syntax keeps the Lambdas' layer small; pylibjpeg-libjpeg is GPL-3.0 and is not used.
What neither decodes is ``unsupported_transfer_syntax``, with the syntax UID in the message.

Only ``DicomSummary``'s fields (modality, view position, photometric interpretation, transfer
syntax, rows, columns, bits stored) ever leave this module, in error messages included: patient name,
id, birth date, accession number and every other tag stay inside.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from model import errors

DICOM_MAGIC: Final = b"DICM"
DICOM_MAGIC_OFFSET: Final = 128
LATERAL_VIEWS: Final = frozenset({"LL", "RL", "LATERAL", "LAT"})
CHEST_PARTS: Final = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS"})
RADIOGRAPHY: Final = frozenset({"CR", "DX"})
MONOCHROME: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == DICOM_MAGIC


@dataclass(frozen=True)
class DicomSummary:
    """The only tags that leave the decoder."""

    modality: str | None
    view_position: str | None
    photometric: str | None
    transfer_syntax: str | None
    rows: int
    columns: int
    bits_stored: int | None

    @classmethod
    def of(cls, ds: Any) -> DicomSummary:
        def text(keyword: str) -> str | None:
            value = ds.get(keyword)
            return str(value).strip().upper() or None if value is not None else None

        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        bits = ds.get("BitsStored")
        return cls(
            modality=text("Modality"),
            view_position=text("ViewPosition"),
            photometric=text("PhotometricInterpretation"),
            transfer_syntax=str(syntax) if syntax else None,
            rows=int(ds.get("Rows") or 0),
            columns=int(ds.get("Columns") or 0),
            bits_stored=int(bits) if bits is not None else None,
        )


def _pydicom() -> Any:
    """pydicom, or a refusal where it is not installed: the SageMaker container does without it, because
    the upload pipeline and the API decode DICOM and send the endpoint a PNG."""
    try:
        import pydicom
        import pydicom.errors
    except ImportError as exc:
        raise errors.UnsupportedImageTypeError(
            "this server has no DICOM decoder: send DICOM through the upload bucket or the API, which decode it"
        ) from exc
    return pydicom


def read(data: bytes) -> Any:
    """The dataset of a DICOM file (pixels not yet decoded)."""
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except pydicom.errors.InvalidDicomError as exc:
        raise errors.NotAnImageError("not a DICOM file") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise errors.TruncatedImageError("the DICOM file is truncated or corrupt") from exc


def check_acceptable(ds: Any, summary: DicomSummary, max_pixels: int, min_side: int) -> None:
    """Refuse, with a reason, what is not a single-frame CR/DX frontal chest image. Missing tags pass."""
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise errors.MultiFrameError(f"a DICOM of {frames} frames; one frontal radiograph is expected")
    samples = int(ds.get("SamplesPerPixel") or 1)
    if samples != 1 or (summary.photometric is not None and summary.photometric not in MONOCHROME):
        raise errors.UnsupportedPhotometricError(
            f"photometric interpretation {summary.photometric} with {samples} samples per pixel; "
            "MONOCHROME1 or MONOCHROME2 is expected"
        )
    if summary.modality is not None and summary.modality not in RADIOGRAPHY:
        raise errors.UnsupportedModalityError(f"modality {summary.modality}; CR or DX is expected")
    if summary.view_position in LATERAL_VIEWS:
        raise errors.NotFrontalError(f"view position {summary.view_position}; a frontal (PA/AP) view is expected")
    part = ds.get("BodyPartExamined")
    if part is not None and str(part).strip() and str(part).strip().upper() not in CHEST_PARTS:
        raise errors.NotChestError("the body part examined is not the chest")
    if summary.rows * summary.columns > max_pixels:
        raise errors.DecompressionBombError(f"{summary.columns}x{summary.rows} pixels; the limit is {max_pixels}")
    if summary.rows and summary.columns and min(summary.rows, summary.columns) < min_side:
        raise errors.ImageTooSmallError(
            f"image is {summary.columns}x{summary.rows}; each side must be >= {min_side} px"
        )


def stored_pixels(ds: Any, summary: DicomSummary) -> npt.NDArray[Any]:
    """The stored values (BitsStored and the sign already applied by pydicom)."""
    try:
        return np.asarray(ds.pixel_array)
    except (NotImplementedError, RuntimeError) as exc:
        raise errors.UnsupportedTransferSyntaxError(f"cannot decode transfer syntax {summary.transfer_syntax}") from exc
    except (ValueError, AttributeError, KeyError, TypeError, OSError, EOFError) as exc:
        raise errors.TruncatedImageError("the DICOM pixel data is truncated or corrupt") from exc


def _first(value: Any) -> float:
    """The first of a possibly multi-valued number (Window Center and Width may hold several)."""
    from pydicom.multival import MultiValue

    return float(value[0]) if isinstance(value, MultiValue | list | tuple) else float(value)


def to_unit_range(ds: Any, stored: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Modality LUT, then VOI, then MONOCHROME1 inversion: values in [0, 1], white is dense."""
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    padding = ds.get("PixelPaddingValue")
    valid = stored != int(padding) if padding is not None else np.ones(stored.shape, dtype=bool)
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    if not valid.any():
        raise errors.EmptyImageError("the image is all padding")
    unit: npt.NDArray[Any]
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        lut = ds.VOILUTSequence[0]
        bits = int(lut.LUTDescriptor[2])
        unit = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float32) / ((1 << bits) - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0)
        # PS3.3 C.11.2.1.2.1, linear: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped.
        unit = (values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5
    else:
        low, high = float(values[valid].min()), float(values[valid].max())
        unit = (values - low) / max(high - low, 1e-9)
    unit = np.clip(unit, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        unit = 1.0 - unit
    unit[~valid] = 0.0  # padding is background: black
    return unit.astype(np.float32)


def dicom_to_gray(data: bytes, max_pixels: int, min_side: int) -> tuple[Image.Image, DicomSummary]:
    """Decode a DICOM chest radiograph to an 8-bit gray image and its whitelisted summary."""
    ds = read(data)
    summary = DicomSummary.of(ds)
    check_acceptable(ds, summary, max_pixels, min_side)
    stored = stored_pixels(ds, summary)
    if stored.ndim != 2:
        raise errors.UnsupportedPhotometricError(f"pixel data of shape {stored.shape}; one gray frame is expected")
    unit = to_unit_range(ds, stored)
    return Image.fromarray((unit * 255.0 + 0.5).astype(np.uint8), "L"), summary


def decode_cost(data: bytes) -> int:
    """Bytes decoding ``data`` may allocate at its peak (stored pixels and float32 copies), from the header."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError):
        return len(data)
    return int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * 14 + len(data)
