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

Bounded before any decoder runs (docs/decoding.md has the table for every format): the file meta is
read first, and a Deflated Explicit VR Little Endian file is inflated here under ``MAX_INFLATED_BYTES``
(pydicom would inflate it whole inside ``dcmread``); the pixel count is capped at ``MAX_PIXELS``, what
real projection radiographs need; a compressed frame's own codestream must declare the header's
dimensions (the decoder allocates for the codestream's); ``decode_cost`` counts BitsAllocated; and
the Modality LUT and VOI run a band of rows at a time in float32, so the working set is the stored
pixels plus a band.

Only ``DicomSummary``'s fields (modality, view position, photometric interpretation, transfer
syntax, rows, columns, bits stored) ever leave this module, in error messages included: patient name,
id, birth date, accession number and every other tag stay inside.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from model.core import codestreams, errors

DICOM_MAGIC: Final = b"DICM"
DICOM_MAGIC_OFFSET: Final = 128
LATERAL_VIEWS: Final = frozenset({"LL", "RL", "LATERAL", "LAT"})
CHEST_PARTS: Final = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS"})
RADIOGRAPHY: Final = frozenset({"CR", "DX"})
MONOCHROME: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})
# The largest projection radiographs (43 x 43 cm at 100 um) are under 20 Mpx; 25 Mpx is 5000 x 5000.
MAX_PIXELS: Final = 25_000_000
DEFLATED: Final = "1.2.840.10008.1.2.1.99"
EXPLICIT_LITTLE: Final = "1.2.840.10008.1.2.1"
# A deflated file inflates to at most this: 25 Mpx of 16 bits and a header of a few MB.
MAX_INFLATED_BYTES: Final = 56 * 1024 * 1024
INFLATE_CHUNK: Final = 1024 * 1024
# A frame's working set beside its stored pixels: one band of rows in float32 at a time.
BAND_ROWS: Final = 256
# Bytes a pixel costs at the decode's peak, per byte allocated to a stored sample: the decoder's output
# buffer, pydicom's array made from it, and the 8-bit result (tests/unit/model/test_hostile_decode.py).
_COPIES_PER_SAMPLE_BYTE: Final = 3
JPEG_SYNTAXES: Final = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
    }
)
J2K_SYNTAXES: Final = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"})


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
        return cls(
            modality=text("Modality"),
            view_position=text("ViewPosition"),
            photometric=text("PhotometricInterpretation"),
            transfer_syntax=str(syntax) if syntax else None,
            rows=number(ds, "Rows", 0),
            columns=number(ds, "Columns", 0),
            bits_stored=number(ds, "BitsStored", None),
        )


def study_facts(ds: Any) -> dict[str, str]:
    """What a viewer shows of a DICOM's study beside its result: the date, modality, view and body part.
    Never a name, an id or a description, which can identify a patient. Empty or malformed tags are left out."""
    facts: dict[str, str] = {}
    date = str(ds.get("StudyDate") or "").strip()
    if re.fullmatch(r"\d{8}", date):
        facts["study_date"] = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    for name, keyword in (("modality", "Modality"), ("view", "ViewPosition"), ("body_part", "BodyPartExamined")):
        value = str(ds.get(keyword) or "").strip().upper()
        if re.fullmatch(r"[A-Z0-9 _]{1,16}", value):
            facts[name] = value
    return facts


def study_of(data: bytes) -> dict[str, str] | None:
    """``study_facts`` of a file, or None for a file that is not a readable DICOM."""
    header = read_header(data) if is_dicom(data) else None
    return study_facts(header) if header is not None else None


def number(ds: Any, keyword: str, default: int | None) -> Any:
    """An integer tag, or ``default`` when absent; ``invalid_dicom`` when its value is not a number."""
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise errors.InvalidDicomError(f"the DICOM tag {keyword} does not hold a number") from exc


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


def _file_meta(data: bytes) -> tuple[Any, int]:
    """The file meta group and the offset where the dataset starts, read without touching the rest."""
    pydicom = _pydicom()
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp = io.BytesIO(data)
    try:
        read_preamble(fp, False)
        # The one reader of group 2 alone; the public read_file_meta_info takes only a path.
        meta = _read_file_meta_info(fp)
    except pydicom.errors.InvalidDicomError as exc:
        raise errors.NotAnImageError("not a DICOM file") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise errors.InvalidDicomError("the DICOM file meta information is corrupt") from exc
    return meta, fp.tell()


def _inflated_chunks(deflated: memoryview) -> Iterator[bytes]:
    """Raw deflate data inflated ``INFLATE_CHUNK`` bytes at a time."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    tail = deflated
    try:
        while True:
            yield inflater.decompress(tail, INFLATE_CHUNK)
            tail = memoryview(inflater.unconsumed_tail)
            if not tail:
                break
        yield inflater.flush()
    except zlib.error as exc:
        raise errors.TruncatedImageError("the deflated DICOM data is corrupt") from exc


def _inflate_under(deflated: memoryview, cap: int) -> bytes:
    """Raw deflate data inflated, or ``DecompressionBombError`` where it passes ``cap``. The size is
    counted first with nothing kept (1 MB at a time), so a bomb is refused holding one chunk; only a
    stream under the cap is inflated again, and kept. (One ``decompress(data, cap)`` call held the cap
    two or three times over by the kernel's count: 112-169 MB for a 56 MB cap.)"""
    size = 0
    for chunk in _inflated_chunks(deflated):
        size += len(chunk)
        if size > cap:
            raise errors.DecompressionBombError(f"the deflated DICOM inflates to more than {cap} bytes")
    return b"".join(_inflated_chunks(deflated))


def inflate(data: bytes, cap: int = MAX_INFLATED_BYTES) -> bytes:
    """``data`` as it is, or a Deflated Explicit VR Little Endian file as the same file uninflated,
    inflated here under ``cap`` bytes (pydicom inflates it whole, before anything can be checked)."""
    meta, start = _file_meta(data)
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
        return data
    body = _inflate_under(memoryview(data)[start:], cap)
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    meta.TransferSyntaxUID = EXPLICIT_LITTLE
    out = DicomBytesIO()
    out.write(bytes(DICOM_MAGIC_OFFSET) + DICOM_MAGIC)
    write_file_meta_info(out, meta, enforce_standard=True)
    out.write(body)
    return out.getvalue()


def read(data: bytes) -> Any:
    """The dataset of a DICOM file (pixels not yet decoded), a deflated one inflated under its cap."""
    pydicom = _pydicom()
    plain = inflate(data)
    try:
        return pydicom.dcmread(io.BytesIO(plain))
    except pydicom.errors.InvalidDicomError as exc:
        raise errors.NotAnImageError("not a DICOM file") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise errors.TruncatedImageError("the DICOM file is truncated or corrupt") from exc


def read_header(data: bytes) -> Any:
    """The dataset without its pixels (what a report about the image copies), or None where the file
    cannot be read: its decode then refuses it with the reason."""
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(io.BytesIO(inflate(data)), stop_before_pixels=True)
    except errors.InvalidImageError:
        return None
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def check_acceptable(ds: Any, summary: DicomSummary, max_pixels: int, min_side: int) -> None:
    """Refuse, with a reason, what is not a single-frame CR/DX frontal chest image. Missing tags pass."""
    if "PixelData" not in ds:
        raise errors.NoPixelDataError(
            "the DICOM holds no image (no Pixel Data): a DICOMDIR, a report or another non-image object"
        )
    if summary.transfer_syntax is None:
        raise errors.InvalidDicomError("the DICOM file meta names no transfer syntax")
    frames = number(ds, "NumberOfFrames", 1) or 1
    if frames > 1:
        raise errors.MultiFrameError(f"a DICOM of {frames} frames; one frontal radiograph is expected")
    samples = number(ds, "SamplesPerPixel", 1) or 1
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


def check_codestream(ds: Any, summary: DicomSummary) -> None:
    """A compressed frame must declare the header's size: its decoder allocates what the codestream
    says, so a 1000 x 1000 header over a 30000 x 30000 JPEG 2000 codestream would pass every cap."""
    syntax = summary.transfer_syntax
    if syntax not in JPEG_SYNTAXES and syntax not in J2K_SYNTAXES:
        return
    from pydicom.encaps import generate_frames

    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except (StopIteration, ValueError, KeyError, TypeError, OSError, EOFError) as exc:
        raise errors.TruncatedImageError("the DICOM pixel data is truncated or corrupt") from exc
    if syntax in J2K_SYNTAXES:
        width, height, _ = codestreams.j2k_size(frame)
    else:
        jpeg = codestreams.jpeg_frame(frame)
        width, height = jpeg.width, jpeg.height
    if (width, height) != (summary.columns, summary.rows):
        raise errors.InvalidDicomError(
            f"the compressed frame is {width}x{height} pixels but the header says {summary.columns}x{summary.rows}"
        )


def stored_pixels(ds: Any, summary: DicomSummary) -> npt.NDArray[Any]:
    """The stored values (BitsStored and the sign already applied by pydicom)."""
    check_codestream(ds, summary)
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


def _window(ds: Any) -> tuple[float, float] | None:
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            return _first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0)
        except (ValueError, TypeError, IndexError) as exc:
            raise errors.InvalidDicomError("the DICOM window center or width is not a number") from exc
    return None


def to_unit_range(ds: Any, stored: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Modality LUT, then VOI, then MONOCHROME1 inversion, to 8 bits (white is dense), a band of rows
    at a time: pydicom's LUT functions return float64, which for a whole 25 Mpx frame would be 200 MB."""
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    padding = number(ds, "PixelPaddingValue", None)
    bands = [slice(top, top + BAND_ROWS) for top in range(0, stored.shape[0], BAND_ROWS)]

    def valid(band: slice) -> npt.NDArray[np.bool_]:
        rows = stored[band]
        return rows != padding if padding is not None else np.ones(rows.shape, dtype=bool)

    def modality(band: slice) -> npt.NDArray[np.float32]:
        try:
            return np.asarray(apply_modality_lut(stored[band], ds), dtype=np.float32)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise errors.InvalidDicomError("the DICOM Modality LUT or rescale cannot be applied") from exc

    if not any(valid(band).any() for band in bands):
        raise errors.EmptyImageError("the image is all padding")
    lut = ds.VOILUTSequence[0] if "VOILUTSequence" in ds and len(ds.VOILUTSequence) else None
    window = _window(ds) if lut is None else None
    lut_top = np.float32(1.0)
    if lut is not None:
        try:
            lut_top = np.float32((1 << int(lut.LUTDescriptor[2])) - 1)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise errors.InvalidDicomError("the DICOM VOI LUT descriptor is corrupt") from exc
    low = high = 0.0
    if lut is None and window is None:  # the image's own range, over its valid pixels
        ranges = [(v[m].min(), v[m].max()) for v, m in ((modality(b), valid(b)) for b in bands) if m.any()]
        low, high = float(min(r[0] for r in ranges)), float(max(r[1] for r in ranges))
    inverted = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    out = np.empty(stored.shape, dtype=np.uint8)
    for band in bands:
        values = modality(band)
        if lut is not None:
            unit = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float32) / lut_top
        elif window is not None:
            center, width = window
            # PS3.3 C.11.2.1.2.1, linear: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped.
            unit = (values - np.float32(center - 0.5)) / np.float32(max(width - 1.0, 1.0)) + np.float32(0.5)
        else:
            unit = (values - np.float32(low)) / np.float32(max(high - low, 1e-9))
        np.clip(unit, 0.0, 1.0, out=unit)
        if inverted:
            unit = 1.0 - unit
        unit[~valid(band)] = 0.0  # padding is background: black
        out[band] = (unit * 255.0 + 0.5).astype(np.uint8)
    return out


def dicom_to_gray(data: bytes, max_pixels: int, min_side: int) -> tuple[Image.Image, DicomSummary]:
    """Decode a DICOM chest radiograph to an 8-bit gray image and its whitelisted summary."""
    ds = read(data)
    summary = DicomSummary.of(ds)
    check_acceptable(ds, summary, min(max_pixels, MAX_PIXELS), min_side)
    stored = stored_pixels(ds, summary)
    if stored.ndim != 2:
        raise errors.UnsupportedPhotometricError(f"pixel data of shape {stored.shape}; one gray frame is expected")
    return Image.fromarray(to_unit_range(ds, stored), "L"), summary


def decode_cost(data: bytes) -> int:
    """Bytes decoding ``data`` may allocate at its peak, from the header: the file, a deflated file's
    inflated copy, and ``_COPIES_PER_SAMPLE_BYTE`` copies of the stored pixels at BitsAllocated."""
    pydicom = _pydicom()
    plain = inflate(data)
    try:
        ds = pydicom.dcmread(io.BytesIO(plain), stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError):
        return len(data) + len(plain)  # refused by the decode itself, which reads no pixels then
    pixels = number(ds, "Rows", 0) * number(ds, "Columns", 0)
    sample_bytes = -(-(number(ds, "BitsAllocated", 16) or 16) // 8)
    inflated = len(plain) if plain is not data else 0
    return int(pixels * (_COPIES_PER_SAMPLE_BYTE * sample_bytes + 1) + 2 * len(data) + inflated)
