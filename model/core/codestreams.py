"""What a compressed image will cost to decode, read from its markers before any decoder sees it.

The decoders' cost is not the file's size: a progressive JPEG is decoded again for every scan (2,000
repeated 31-byte scans held a 4000 x 4000 image for 17 s), Pillow walks every PNG chunk and every
JPEG marker segment in Python, and a JPEG or JPEG 2000 codestream inside a DICOM may declare
dimensions other than the DICOM header's, which the decoder allocates for. These walkers read the
markers only (linear in the file, C-speed searches for the entropy-coded data), and stop as soon as
a limit is passed, so a hostile file costs them no more than a few thousand steps.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from model.core import errors

# libjpeg's standard progressive scripts use 6 scans (gray) and 10 (colour); a baseline JPEG has one
# scan per component at most. Three times the colour script leaves room for custom encoders.
MAX_JPEG_SCANS: Final = 32
# Marker segments before the image data (APPn, COM, DQT, DHT, ...): real files have a few dozen.
MAX_JPEG_SEGMENTS: Final = 1000
# Encoders split PNG image data into chunks of 8 KB or more; a 25 MB PNG of 8 KB chunks has 3,200.
MAX_PNG_CHUNKS: Final = 10_000
# Pillow's own cap on what one compressed text or ICC chunk may inflate to (PngImagePlugin.MAX_TEXT_CHUNK).
MAX_PNG_METADATA_BYTES: Final = 1024 * 1024
_COMPRESSED_METADATA: Final = frozenset({b"zTXt", b"iCCP"})

_SOI: Final = b"\xff\xd8"
# Start-of-frame markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC); F7 is JPEG-LS's SOF55.
_SOF: Final = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7})
_PROGRESSIVE: Final = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_SOF55: Final = 0xF7
_SOS: Final = 0xDA
_EOI: Final = 0xD9
# In entropy-coded data, 0xFF is followed by 0x00 (a stuffed byte) or RSTn; anything else is a marker.
_NEXT_MARKER: Final = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_J2K_SOC_SIZ: Final = b"\xff\x4f\xff\x51"
_JP2_SIGNATURE: Final = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class JpegFrame:
    width: int
    height: int
    components: int
    progressive: bool
    scans: int


def jpeg_frame(data: bytes | memoryview) -> JpegFrame:
    """The frame header and scan count of a JPEG (or JPEG-LS) codestream; refuses scan bombs."""
    data = bytes(data)
    if not data.startswith(_SOI):
        raise errors.TruncatedImageError("the JPEG codestream does not start with SOI")
    position, segments, scans = 2, 0, 0
    frame: tuple[int, int, int, bool] | None = None
    jpeg_ls = False
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise errors.TruncatedImageError("the JPEG marker structure is corrupt")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker == _EOI:
            break
        (length,) = struct.unpack_from(">H", data, position + 2)
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise errors.DecompressionBombError(f"the JPEG has more than {MAX_JPEG_SEGMENTS} marker segments")
        if marker in _SOF and position + 10 <= len(data):
            height, width = struct.unpack_from(">HH", data, position + 5)
            frame = (width, height, data[position + 9], marker in _PROGRESSIVE)
            jpeg_ls = marker == _SOF55
        position += 2 + length
        if marker == _SOS and jpeg_ls:
            # JPEG-LS has no progressive mode, and its coded data stuffs bits, not bytes: 0xFF can be
            # followed by any byte below 0x80, so the search below would find markers that are not.
            scans += 1
            break
        if marker == _SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise errors.DecompressionBombError(
                    f"the JPEG has more than {MAX_JPEG_SCANS} scans; a radiograph needs at most 10"
                )
            found = _NEXT_MARKER.search(data, position)
            if found is None:
                break
            position = found.start()
    if frame is None:
        raise errors.TruncatedImageError("the JPEG has no frame header")
    width, height, components, progressive = frame
    return JpegFrame(width, height, components, progressive, scans)


def png_chunks(data: bytes) -> int:
    """The number of chunks of a PNG; refuses more than ``MAX_PNG_CHUNKS`` (Pillow reads each in Python)
    and compressed metadata that inflates past ``MAX_PNG_METADATA_BYTES`` (Pillow would refuse it
    with an error that reads as a corrupt file)."""
    position, count = len(_PNG_MAGIC), 0
    while position + 8 <= len(data):
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise errors.DecompressionBombError(f"the PNG is split into more than {MAX_PNG_CHUNKS} chunks")
        (length,) = struct.unpack_from(">I", data, position)
        tag = data[position + 4 : position + 8]
        if tag == b"IEND":
            break
        if tag in _COMPRESSED_METADATA:
            _check_metadata(tag, data[position + 8 : position + 8 + length])
        position += 12 + length
    return count


def _check_metadata(tag: bytes, payload: bytes) -> None:
    """zTXt and iCCP: a Latin-1 name, a NUL, the compression method, then a zlib stream."""
    separator = payload.find(b"\x00")
    if separator < 0:
        return  # Pillow ignores a chunk it cannot parse
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(payload[separator + 2 :], MAX_PNG_METADATA_BYTES)
    except zlib.error:
        return
    if inflater.unconsumed_tail:
        raise errors.DecompressionBombError(
            f"the PNG's {tag.decode()} chunk inflates to more than {MAX_PNG_METADATA_BYTES} bytes"
        )


def j2k_size(data: bytes | memoryview) -> tuple[int, int, int]:
    """(width, height, components) from a JPEG 2000 codestream's SIZ marker (raw or in a JP2 box)."""
    data = bytes(data)
    start = data.find(_J2K_SOC_SIZ) if data.startswith(_JP2_SIGNATURE) else (0 if data.startswith(_J2K_SOC_SIZ) else -1)
    if start < 0 or start + 42 > len(data):
        raise errors.TruncatedImageError("the JPEG 2000 codestream has no SIZ marker")
    # SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz, Csiz
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", data, start + 8)
    (components,) = struct.unpack_from(">H", data, start + 40)
    return max(0, xsiz - xosiz), max(0, ysiz - yosiz), components
