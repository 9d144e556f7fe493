"""Tiny synthetic images, built in memory, for every decoding case the service must handle."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from local_stack.hostile import HTML, PDF, huge_declared_png, large_png

__all__ = ["HTML", "PDF", "huge_declared_png", "large_png"]


def gradient(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = (x + y) * (255.0 / (2 * size))
    return (base + rng.normal(0, 8, (size, size))).clip(0, 255).astype(np.uint8)


SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE_XRAYS = tuple(sorted(p for p in SAMPLES.glob("*-*.png") if p.name != "not-an-xray.png"))


def chest(size: int = 256, seed: int = 0) -> np.ndarray:
    """A distinct chest X-ray for each seed: a bundled sample, cropped a little, resized and noised.

    For tests that need the bundled model to classify (its gate refuses anything else)."""
    rng = np.random.default_rng(seed)
    base = Image.open(SAMPLE_XRAYS[seed % len(SAMPLE_XRAYS)]).convert("L")
    share = rng.uniform(0.9, 1.0)
    w, h = int(base.width * share), int(base.height * share)
    x, y = int(rng.integers(0, base.width - w + 1)), int(rng.integers(0, base.height - h + 1))
    crop = base.crop((x, y, x + w, y + h)).resize((size, size), Image.Resampling.LANCZOS)
    noisy = np.asarray(crop, np.float64) + rng.normal(0, 3, (size, size))
    return noisy.clip(0, 255).astype(np.uint8)


def xray_png(size: int = 256, seed: int = 0) -> bytes:
    return encode(Image.fromarray(chest(size, seed), "L"), "PNG")


def xray_jpeg(size: int = 256, seed: int = 0) -> bytes:
    return encode(Image.fromarray(chest(size, seed), "L"), "JPEG", quality=90)


def photograph(seed: int = 0, size: int = 480) -> bytes:
    """A colour outdoor scene, rendered: sky, sun, hills, a house and noise (JPEG, like a phone photo)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size)[:, None, None]
    sky = (np.array([90, 150, 230]) * (1 - y) + np.array([200, 220, 250]) * y).repeat(size, axis=1)
    scene = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(scene)
    sun = int(rng.integers(40, size - 80))
    draw.ellipse((sun, 30, sun + 60, 90), fill=(255, 230, 90))
    for _ in range(3):
        top = int(rng.integers(size // 2, size - 60))
        draw.polygon(
            [(0, size), (int(rng.integers(0, size)), top), (size, size)], fill=(40, int(rng.integers(110, 170)), 50)
        )
    x = int(rng.integers(40, size - 160))
    draw.rectangle((x, size - 170, x + 120, size - 80), fill=(180, 60, 40))
    draw.polygon([(x - 10, size - 170), (x + 60, size - 230), (x + 130, size - 170)], fill=(90, 40, 30))
    pixels = np.asarray(scene, np.float64) + rng.normal(0, 6, (size, size, 3))
    return encode(Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB"), "JPEG", quality=88)


def text_page(seed: int = 0) -> bytes:
    """A scanned-looking page of text (PNG)."""
    rng = np.random.default_rng(seed)
    page = Image.new("L", (600, 800), 245)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=16)
    for line in range(40):
        words = " ".join(f"word{rng.integers(1000)}" for _ in range(7))
        draw.text((30, 20 + 19 * line), words, fill=20, font=font)
    return encode(page, "PNG")


def turned(data: bytes, degrees: int) -> bytes:
    """The image turned counter-clockwise by ``degrees`` (PNG)."""
    return encode(Image.open(io.BytesIO(data)).rotate(degrees, expand=True), "PNG")


def inverted(data: bytes) -> bytes:
    """The grayscale negative of an image (PNG)."""
    return encode(ImageOps.invert(Image.open(io.BytesIO(data)).convert("L")), "PNG")


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
