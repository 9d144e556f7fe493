"""Untrusted image bytes to an upright 8-bit gray image: one sniff, then one decoder per format.

The format is taken from the magic bytes (``decoder_for``), never from a file name or a content type,
and each image is sniffed once. Decoding is defensive: the byte size is checked before anything else;
the pixel count from the header before any pixel is decoded; the markers that set a decoder's time
(JPEG scans and segments, PNG chunks: ``model.core.codestreams``) are counted before the decoder runs;
truncated files are errors, not grey padding. Every failure is a subclass of
``model.core.errors.InvalidImageError``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Final, Protocol

from PIL import Image, ImageOps

from model.core import codestreams, contract, dicom, errors, raster

# A real chest radiograph is at most ~4300 x 4300 px (18.5 Mpx); 64 Mpx leaves room for scans
# while refusing e.g. a 30000 x 30000 PNG that would need 900 MB just to decode.
MAX_PIXELS: Final = 64_000_000
MIN_SIDE: Final = 32
# The SageMaker runtime refuses larger bodies, so an image above this can never be served.
MAX_IMAGE_BYTES: Final = contract.MAX_BODY_BYTES  # one raw image is at most one request body
# What one decode may allocate for its pixels (Pillow keeps 1, 2 or 4 bytes a pixel, by mode): an
# 8000 x 8000 RGBA PNG (256 MB) fits, a 64 Mpx one of 4 bytes a pixel does not.
MAX_DECODED_BYTES: Final = 256 * 1024 * 1024

PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC: Final = b"\xff\xd8\xff"


class Decoder(Protocol):
    """One format's decoder. ``data`` is the image the decoder was chosen for (``decoder_for``)."""

    format: str

    def cost(self, data: bytes) -> int:
        """What decoding ``data`` may allocate at its peak, known from its header alone."""
        ...

    def gray(self, data: bytes, min_size: int) -> Image.Image:
        """Upright 8-bit gray, at least ``min_size`` px on each side where the source is."""
        ...

    def reduced(self, data: bytes, max_side: int) -> Image.Image:
        """Upright 8-bit gray shrunk towards ``max_side`` within the memory of the decoded pixels."""
        ...


def png_significant_bits(data: bytes) -> int | None:
    """The gray significant bits of a PNG's ``sBIT`` chunk, if it has one (Pillow does not read it)."""
    if not data.startswith(PNG_MAGIC):
        return None
    position = len(PNG_MAGIC)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        tag = data[position + 4 : position + 8]
        if tag == b"sBIT":
            return data[position + 8] if length >= 1 and position + 8 < len(data) else None
        if tag in (b"IDAT", b"IEND"):
            return None
        position += 12 + length
    return None


class _PillowDecoder:
    """PNG and JPEG: Pillow, opened lazily and checked from the header before any pixel is decoded."""

    format: str

    def check_markers(self, data: bytes) -> None:
        raise NotImplementedError

    def significant_bits(self, data: bytes) -> int | None:
        return None

    def open(self, data: bytes) -> Image.Image:
        """The markers counted, then the header read and checked; no pixel decoded."""
        self.check_markers(data)
        return self._open_header(data)

    def _open_header(self, data: bytes) -> Image.Image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data), formats=[self.format])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise errors.DecompressionBombError("image declares too many pixels") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise errors.TruncatedImageError(f"{self.format} header is corrupt or truncated") from exc
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise errors.DecompressionBombError(
                f"image declares {width}x{height} pixels; the limit is {MAX_PIXELS} pixels"
            )
        if min(width, height) < MIN_SIDE:
            raise errors.ImageTooSmallError(f"image is {width}x{height}; each side must be >= {MIN_SIDE} px")
        self.check_decoded_size(image)
        return image

    def check_decoded_size(self, image: Image.Image) -> None:
        if raster.decoded_bytes(image) > MAX_DECODED_BYTES:
            raise errors.DecompressionBombError(
                f"image would decode to {raster.decoded_bytes(image)} bytes ({image.mode}); "
                f"the limit is {MAX_DECODED_BYTES}"
            )

    def cost(self, data: bytes) -> int:
        return 2 * raster.decoded_bytes(self.open(data))

    def draft(self, image: Image.Image, side: int) -> None:
        """A decoder that can decode at a reduced scale does so here (JPEG)."""

    def gray(self, data: bytes, min_size: int) -> Image.Image:
        image = self.open(data)
        self.draft(image, min_size)

        def decode() -> Image.Image:
            image.load()
            return raster.to_gray(ImageOps.exif_transpose(image), self.significant_bits(data))

        return _decoded(self.format, decode)

    def reduced(self, data: bytes, max_side: int) -> Image.Image:
        image = self.open(data)
        self.draft(image, max_side)

        def decode() -> Image.Image:
            orientation = image.getexif().get(0x0112)
            image.load()
            return raster.upright(raster.reduced_gray(image, max_side, self.significant_bits(data)), orientation)

        return _decoded(self.format, decode)


def _decoded(fmt: str, decode: Callable[[], Image.Image]) -> Image.Image:
    """``decode()``, with Pillow's decoding failures raised as the model's errors."""
    try:
        return decode()
    except (OSError, SyntaxError, ValueError) as exc:
        raise errors.TruncatedImageError(f"{fmt} data is truncated or corrupt") from exc
    except Image.DecompressionBombError as exc:
        raise errors.DecompressionBombError("image declares too many pixels") from exc


class PngDecoder(_PillowDecoder):
    format = "PNG"

    def check_markers(self, data: bytes) -> None:
        codestreams.png_chunks(data)

    def significant_bits(self, data: bytes) -> int | None:
        return png_significant_bits(data)


class JpegDecoder(_PillowDecoder):
    format = "JPEG"

    def check_markers(self, data: bytes) -> None:
        codestreams.jpeg_frame(data)

    def check_decoded_size(self, image: Image.Image) -> None:
        """JPEGs are decoded at a reduced scale (draft), so only their pixel count is capped."""

    def cost(self, data: bytes) -> int:
        frame = codestreams.jpeg_frame(data)  # the marker check, read once for its frame too
        cost = 2 * raster.decoded_bytes(self._open_header(data))
        if frame.progressive:  # libjpeg keeps every coefficient of every component until the last scan
            cost += frame.width * frame.height * frame.components * 2
        return cost

    def draft(self, image: Image.Image, side: int) -> None:
        # DCT-domain downscaling and gray output straight from the decoder: ~5x faster on large JPEGs.
        image.draft("L", (side, side))


class DicomDecoder:
    """DICOM Part 10 (``model.core.dicom``): gray from its stored pixels, upright by its own tags."""

    format = "DICOM"

    def cost(self, data: bytes) -> int:
        return dicom.decode_cost(data)

    def gray(self, data: bytes, min_size: int) -> Image.Image:
        return dicom.dicom_to_gray(data, MAX_PIXELS, MIN_SIDE)[0]

    def reduced(self, data: bytes, max_side: int) -> Image.Image:
        return self.gray(data, max_side)


_DECODERS: Final[tuple[tuple[bytes, Decoder], ...]] = ((PNG_MAGIC, PngDecoder()), (JPEG_MAGIC, JpegDecoder()))
_DICOM: Final = DicomDecoder()


def decoder_for(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> Decoder:
    """The decoder of ``data``'s format, from its magic bytes; an ``InvalidImageError`` where ``data``
    is empty, larger than ``max_bytes`` or not a PNG, JPEG or DICOM image."""
    if not data:
        raise errors.EmptyImageError("empty body: no image bytes")
    if len(data) > max_bytes:
        raise errors.ImageTooLargeError(f"image is {len(data)} bytes; the limit is {max_bytes}")
    for magic, decoder in _DECODERS:
        if data.startswith(magic):
            return decoder
    if dicom.is_dicom(data):
        return _DICOM
    raise errors.NotAnImageError("not a PNG, JPEG or DICOM image (checked by content, not by name)")


def sniff_format(data: bytes) -> str:
    """``"PNG"``, ``"JPEG"`` or ``"DICOM"`` from the magic bytes, or raise an ``InvalidImageError``."""
    return decoder_for(data, max(len(data), 1)).format


def decode_cost(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> int:
    """What decoding ``data`` may allocate at its peak, known from its header alone (for a byte budget)."""
    return decoder_for(data, max_bytes).cost(data)


def load_gray(data: bytes, min_size: int, max_bytes: int = MAX_IMAGE_BYTES) -> Image.Image:
    """Validate and decode to an upright 8-bit gray image, at least ``min_size`` px on each side
    where the source is (JPEGs are decoded at a reduced scale when that still holds)."""
    return decoder_for(data, max_bytes).gray(data, min_size)
