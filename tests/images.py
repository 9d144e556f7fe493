"""Tiny synthetic images, built in memory, for every decoding case the service must handle."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from local_stack.hostile import HTML, PDF, huge_declared_png, large_png

__all__ = ["HTML", "PDF", "huge_declared_png", "large_png"]


def gradient(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = (x + y) * (255.0 / (2 * size))
    return (base + rng.normal(0, 8, (size, size))).clip(0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png(size: int = 96, mode: str = "L", seed: int = 0) -> bytes:
    gray = Image.fromarray(gradient(size, seed), "L")
    return encode(gray.convert(mode), "PNG")


def jpeg(size: int = 96, mode: str = "L", seed: int = 0, **kwargs: object) -> bytes:
    gray = Image.fromarray(gradient(size, seed), "L")
    return encode(gray.convert(mode), "JPEG", quality=90, **kwargs)


def png16(size: int = 96) -> bytes:
    wide = gradient(size).astype(np.uint16) * 257
    return encode(Image.fromarray(wide), "PNG")


def png12_in_16(size: int = 96, significant_bits: int | None = None, scaled: bool = False) -> bytes:
    """A 12-bit detector image in a 16-bit PNG: raw 0..4095 values (as many exporters store them),
    or scaled to 0..65535 as the PNG standard asks; optionally with an ``sBIT`` chunk."""
    twelve = (gradient(size).astype(np.uint32) * 4095 // 255).astype(np.uint16)
    data = encode(Image.fromarray(twelve * 16 + twelve // 256 if scaled else twelve), "PNG")
    if significant_bits is None:
        return data
    body = b"sBIT" + bytes([significant_bits])
    chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))
    end_of_header = 8 + 25  # signature + IHDR (length, tag, 13 bytes, CRC)
    return data[:end_of_header] + chunk + data[end_of_header:]


def palette_png(size: int = 96) -> bytes:
    return encode(Image.fromarray(gradient(size), "L").convert("P"), "PNG")


def rgba_png(size: int = 96) -> bytes:
    rgba = Image.fromarray(gradient(size), "L").convert("RGBA")
    return encode(rgba, "PNG")


def cmyk_jpeg(size: int = 96) -> bytes:
    return encode(Image.fromarray(gradient(size), "L").convert("CMYK"), "JPEG", quality=90)


def exif_rotated_jpeg(width: int = 120, height: int = 60, orientation: int = 6) -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90°' (orientation 6): upright it is portrait."""
    data = np.zeros((height, width), np.uint8)
    data[:, : width // 2] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(data, "L"), "JPEG", quality=95, exif=exif.tobytes())


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def class_folders(root: Path, per_class: int, size: int = 64) -> Path:
    """A tiny class-folder dataset (covid/, no_findings/, pneumonia/) with NIH-style file names."""
    for c, label in enumerate(("covid", "no_findings", "pneumonia")):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / label / f"{c}{i:07d}_000.png").write_bytes(png(size, seed=c * 100 + i))
    return root


def large_jpeg(side: int = 8000, seed: int = 0) -> bytes:
    """A full-colour ``side`` x ``side`` JPEG with a little noise: the largest kind that still passes
    the 25 MiB object limit (about 20 MB at 8000 px)."""
    rng = np.random.default_rng(seed)
    tile = (gradient(512, seed)[..., None] + rng.integers(0, 24, (512, 512, 3))).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(np.tile(tile, (side // 512 + 1, side // 512 + 1, 1))[:side, :side], "RGB")
    return encode(image, "JPEG", quality=85)
