"""Pillow images to 8-bit gray without clipping, within the memory of the decoded pixels.

What every decoder (``model.core.decoding``) shares: what a mode costs per pixel, 16-bit and palette
images to gray a band of rows at a time, a box reduction without the full-size copy Pillow makes, and
the EXIF turn applied to the small image instead of the original.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# Rows converted at a time: a band, not a full-size 32-bit copy.
_ROWS: Final = 256


def bytes_per_pixel(mode: str) -> int:
    """What Pillow allocates per pixel for ``mode`` (RGB, like every multi-band mode, takes 4)."""
    if mode in {"1", "L", "P"}:
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def decoded_bytes(image: Image.Image) -> int:
    """The bytes decoding ``image`` allocates for its pixels, known from the header alone."""
    width, height = image.size
    return width * height * bytes_per_pixel(image.mode)


def wide_full_scale(image: Image.Image, significant_bits: int | None) -> int:
    """The sample value that is white in a 16-bit (or 32-bit integer) gray image.

    With the bits actually stored known (PNG ``sBIT``, DICOM BitsStored): ``2**bits - 1`` when the
    samples are stored as they are, which many exporters do, or 65535 when they were scaled up to 16
    bits as the PNG standard asks (then some exceed ``2**bits - 1``). Unknown: the image's own range,
    to the next whole bit depth, so a 12-bit detector's 0..4095 stored in 16 bits is not nearly black.
    Never 65535 blindly.
    """
    extrema = image.getextrema()
    high = int(extrema[1]) if isinstance(extrema, tuple) and not isinstance(extrema[1], tuple) else 65535
    if significant_bits:
        stored = (1 << significant_bits) - 1
        return stored if high <= stored else 65535
    return (1 << max(8, high.bit_length())) - 1


def wide_to_gray(image: Image.Image, significant_bits: int | None) -> Image.Image:
    """16-bit (or 32-bit integer) gray to 8-bit, a band of rows at a time: no full-size 32-bit copy.

    Pillow's own convert("L") clips at 255, which would make such an image white.
    """
    scale = wide_full_scale(image, significant_bits)
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    for top in range(0, height, _ROWS):
        band = np.asarray(image.crop((0, top, width, min(height, top + _ROWS))), dtype=np.int64)
        out[top : top + band.shape[0]] = ((band.clip(0, scale) * 255 + scale // 2) // scale).astype(np.uint8)
    return Image.fromarray(out, "L")


def to_gray(image: Image.Image, significant_bits: int | None = None) -> Image.Image:
    """Convert any decoded mode to 8-bit gray without clipping high bit depths."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in SIXTEEN_BIT_MODES:
        return wide_to_gray(image, significant_bits)
    if mode == "F":
        floats = np.asarray(image, dtype=np.float32)
        return Image.fromarray((floats.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "L")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in {"LA", "RGBA", "PA", "La", "RGBa"}:
        # Transparent areas become black, the background colour of a radiograph.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    if mode == "CMYK":
        image = image.convert("RGB")
    return image.convert("L")


def palette_to_gray(image: Image.Image) -> Image.Image:
    """A palette image to gray through its 256-entry table (alpha over black), never through RGBA."""
    palette = (image.getpalette("RGB") or []) + [0] * 768
    entries = np.asarray(palette[:768], dtype=np.float32).reshape(256, 3)
    gray = entries @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # Pillow's L weights
    transparency = image.info.get("transparency")
    if isinstance(transparency, int):
        gray[transparency] = 0.0
    elif isinstance(transparency, bytes):
        alpha = np.frombuffer(transparency, np.uint8)[:256].astype(np.float32) / 255.0
        gray[: len(alpha)] *= alpha
    lut = (gray + 0.5).clip(0, 255).astype(np.uint8)
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    for top in range(0, height, _ROWS):
        out[top : top + _ROWS] = lut[np.asarray(image.crop((0, top, width, min(height, top + _ROWS))))]
    return Image.fromarray(out, "L")


_EXIF_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def reduced_gray(image: Image.Image, max_side: int, significant_bits: int | None = None) -> Image.Image:
    """Decode and shrink to gray within the memory of the decoded pixels themselves.

    Every mode is reduced by whole factors (a box average, Pillow's ``reduce``) in its own mode right
    after decoding, before the conversion to gray, so no full-size RGBA or 32-bit copy is made.
    """
    factor = max(1, max(image.size) // (2 * max_side))
    if image.mode in SIXTEEN_BIT_MODES:
        image = wide_to_gray(image, significant_bits)
    elif image.mode == "P":
        image = palette_to_gray(image)
    if factor > 1:
        image = reduce_in_bands(image, factor)
    return to_gray(image)


def reduce_in_bands(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``, the same pixels, without the full-size copy ``reduce`` makes first."""
    width, height = image.size
    out = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    step = factor * 64
    for top in range(0, height, step):
        out.paste(image.crop((0, top, width, min(height, top + step))).reduce(factor), (0, top // factor))
    return out


def upright(image: Image.Image, orientation: int | None) -> Image.Image:
    """What ``ImageOps.exif_transpose`` does, applied to the small gray image instead of the original."""
    method = _EXIF_TRANSPOSE.get(orientation or 1)
    return image if method is None else image.transpose(method)
