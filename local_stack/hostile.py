"""Hostile uploads, made in memory: what the soak and the tests throw at the pipeline.

A few hundred bytes to a few hundred KB each that are not images, are cut short, are too small, or
declare far more pixels than they carry (decompression and memory bombs), and files that cost a
decoder far more memory or time than their size: deflated and RLE DICOMs, a codestream that lies
about its size, progressive JPEG scan bombs, PNGs and JPEGs of hundreds of thousands of chunks or
segments, compressed PNG metadata that inflates to hundreds of MB.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!doctype html><html><body>not an x-ray</body></html>"


def _chunk(tag: bytes, payload: bytes) -> bytes:
    body = tag + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def huge_declared_png(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes that declare width x height pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * 64
    return PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(row)) + _chunk(b"IEND", b"")


def large_png(width: int, height: int, kind: str) -> bytes:
    """A PNG declaring ``width`` x ``height`` pixels, streamed row by row: a few hundred KB on disk
    that decode to hundreds of MB (a memory bomb under the pixel cap). ``kind``: ``gray16``, ``rgba``
    or ``palette``."""
    color_type, depth, channels = {"gray16": (0, 16, 1), "rgba": (6, 8, 4), "palette": (3, 8, 1)}[kind]
    ramp = (np.arange(width, dtype=np.uint32) * 255 // max(1, width - 1)).astype(np.uint8)
    row = np.repeat(ramp, depth // 8 * channels).tobytes()
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(b"\x00" + row) for _ in range(height)) + compressor.flush()
    parts = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))]
    if kind == "palette":
        parts.append(_chunk(b"PLTE", bytes(v for i in range(256) for v in (i, i, i))))
    return PNG_MAGIC + b"".join(parts) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


# -- files that cost a decoder far more than their size (docs/decoding.md) ----------------------------
def _dicom_header(rows: int, columns: int, syntax: str, bits_allocated: int = 16) -> tuple[bytes, bytes]:
    """A DX chest dataset's file meta (with preamble) and its body up to, not including, Pixel Data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(syntax)
    head = DicomBytesIO()
    head.write(bytes(128) + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    ds = Dataset()
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "DX", "PA", "CHEST"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    bits = min(12, bits_allocated)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_allocated, bits, bits - 1, 0
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, syntax == "1.2.840.10008.1.2"
    write_dataset(body, ds)
    return head.getvalue(), body.getvalue()


def deflated_dicom_bomb(inflated_bytes: int = 400 * 1024 * 1024) -> bytes:
    """Deflated Explicit VR Little Endian whose dataset inflates to ``inflated_bytes`` of zeros
    (about 1,000 times its size): pydicom inflates all of it inside ``dcmread``."""
    side = int((inflated_bytes // 2) ** 0.5)
    head, body = _dicom_header(side, side, "1.2.840.10008.1.2.1.99")
    length = side * side * 2
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflater.compress(body + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", length))]
    zeros = bytes(1 << 20)
    for _ in range(length >> 20):
        parts.append(deflater.compress(zeros))
    parts.append(deflater.compress(bytes(length & ((1 << 20) - 1))))
    return head + b"".join(parts) + deflater.flush()


def deflated_dicom(pixels: np.ndarray) -> bytes:
    """A small, honest deflated DICOM of 8-bit ``pixels`` (what a PACS may send)."""
    head, body = _dicom_header(pixels.shape[0], pixels.shape[1], "1.2.840.10008.1.2.1.99", bits_allocated=8)
    data = pixels.astype(np.uint8).tobytes() + (b"\x00" if pixels.size % 2 else b"")
    element = b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<I", len(data)) + data
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return head + deflater.compress(body + element) + deflater.flush()


def _encapsulated(head: bytes, body: bytes, frame: bytes) -> bytes:
    from pydicom.encaps import encapsulate

    # Pixel Data, OB, undefined length: the items encapsulate() makes, then the sequence delimiter.
    value = encapsulate([frame]) + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return head + body + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" + value


def rle_dicom(side: int) -> bytes:
    """A ``side`` x ``side`` 16-bit RLE Lossless DICOM of zeros: 2 MB at 8000 px, 128 MB decoded."""
    head, body = _dicom_header(side, side, "1.2.840.10008.1.2.5")
    plane = side * side
    rest = plane % 128  # the last run: a literal byte, or a replicate run of ``rest`` zeros
    segment = b"\x81\x00" * (plane // 128) + (bytes([0 if rest == 1 else 257 - rest, 0]) if rest else b"")
    header = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13))
    return _encapsulated(head, body, header + segment + segment)


def j2k_dicom_lying(header_side: int, codestream_side: int) -> bytes:
    """A JPEG 2000 Lossless DICOM whose header says ``header_side`` px a side and whose codestream's
    SIZ marker says ``codestream_side``: the decoder allocates for the codestream."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((64, 64), np.uint16).tobytes()
    ds.compress(JPEG2000Lossless)
    from pydicom.encaps import generate_frames

    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    siz = frame.find(b"\xff\x51")
    struct.pack_into(">II", frame, siz + 6, codestream_side, codestream_side)
    head, body = _dicom_header(header_side, header_side, JPEG2000Lossless)
    return _encapsulated(head, body, bytes(frame))


def _jpeg_segments(data: bytes) -> tuple[bytes, list[bytes]]:
    """A JPEG split into its part before the first scan and the scans (each SOS with its data)."""
    first = data.index(b"\xff\xda")
    scans, position = [], first
    while True:
        end = data.find(b"\xff\xda", position + 2)
        scans.append(data[position : end if end >= 0 else len(data) - 2])
        if end < 0:
            return data[:first], scans
        position = end


def progressive_scan_bomb(side: int = 4000, repeats: int = 2000) -> bytes:
    """A progressive gray JPEG whose last scan is repeated ``repeats`` times before EOI (each repeat
    a few dozen bytes; libjpeg decodes each scan over the whole coefficient buffer)."""
    from PIL import Image

    image = Image.new("L", (side, side), 0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=True, quality=75)
    head, scans = _jpeg_segments(buffer.getvalue())
    return head + b"".join(scans) + scans[-1] * repeats + b"\xff\xd9"


def jpeg_many_segments(count: int = 200_000, side: int = 256) -> bytes:
    """A small JPEG with ``count`` empty comment segments before its frame (Pillow reads each in Python)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG")
    data = buffer.getvalue()
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def png_many_chunks(count: int = 500_000, side: int = 256) -> bytes:
    """A small gray PNG whose image data is split into ``count`` chunks (most of them empty IDATs)."""
    idat = zlib.compress(b"".join(b"\x00" + bytes(side) for _ in range(side)))
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    return PNG_MAGIC + header + _chunk(b"IDAT", idat) + _chunk(b"IDAT", b"") * count + _chunk(b"IEND", b"")


def png_huge_metadata(tag: bytes, inflated_bytes: int = 512 * 1024 * 1024, side: int = 256) -> bytes:
    """A gray PNG with one compressed ancillary chunk (``zTXt`` or ``iCCP``) that inflates to
    ``inflated_bytes``."""
    compressor = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    packed = b"".join(compressor.compress(zeros) for _ in range(inflated_bytes >> 20)) + compressor.flush()
    payload = b"bomb\x00\x00" + packed  # keyword / profile name, separator, method 0
    idat = zlib.compress(b"".join(b"\x00" + bytes(side) for _ in range(side)))
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    return PNG_MAGIC + header + _chunk(tag, payload) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
