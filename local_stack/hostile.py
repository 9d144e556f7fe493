"""Hostile uploads, made in memory: what the soak and the tests throw at the pipeline.

A few hundred bytes to a few hundred KB each that are not images, are cut short, are too small, or
declare far more pixels than they carry (decompression and memory bombs).
"""

from __future__ import annotations

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
