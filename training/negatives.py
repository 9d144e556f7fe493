"""What the gate must refuse, by category, for measuring it (never for fitting it).

- ``lateral`` and ``ct``: the real lateral radiographs and CT slices of a ``cxr-ood`` folder.
- ``inverted``, ``rotated90``, ``rotated180``, ``rotated270``: copies of held-out chest X-rays.
- ``photographs``, ``documents``: the real photographs, micrographs and scanned pages that ship with
  scikit-image (``skimage.data``), each in several crops.
- ``text``, ``screenshots``, ``drawings``, ``noise``, ``flat``: rendered here, with a fixed seed.

Every generated image is encoded as PNG and decoded by the serving decoder, like an upload.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from model.core.preprocessing import prepare
from model.core.presets import Preset

Uint8Images = npt.NDArray[np.uint8]

PHOTOGRAPHS: Final = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "grass",
    "gravel",
    "brick",
    "cell",
    "colorwheel",
)
DOCUMENTS: Final = ("page", "text")
CROPS_PER_IMAGE: Final = 4
GENERATED_PER_CATEGORY: Final = 40


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _decoded(images: Iterator[Image.Image], preset: Preset) -> Uint8Images:
    return np.stack([prepare(_png(image), preset) for image in images])


def _crops(image: Image.Image, rng: np.random.Generator) -> Iterator[Image.Image]:
    yield image
    width, height = image.size
    for _ in range(CROPS_PER_IMAGE - 1):
        share = rng.uniform(0.5, 0.9)
        w, h = int(width * share), int(height * share)
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        yield image.crop((x, y, x + w, y + h))


def skimage_images(names: tuple[str, ...], rng: np.random.Generator) -> Iterator[Image.Image]:
    import skimage.data

    for name in names:
        array = np.asarray(getattr(skimage.data, name)())
        if array.dtype != np.uint8:
            array = (255 * (array - array.min()) / max(1e-9, float(np.ptp(array)))).astype(np.uint8)
        yield from _crops(Image.fromarray(array).convert("RGB"), rng)


def text_pages(rng: np.random.Generator) -> Iterator[Image.Image]:
    for _ in range(GENERATED_PER_CATEGORY):
        size = int(rng.integers(10, 28))
        font = ImageFont.load_default(size=size)
        page = Image.new("L", (int(rng.integers(500, 900)), int(rng.integers(600, 1100))), int(rng.integers(200, 256)))
        draw = ImageDraw.Draw(page)
        for line in range(0, page.height - size, int(size * 1.5)):
            words = " ".join(f"word{rng.integers(10_000)}" for _ in range(int(rng.integers(3, 12))))
            draw.text((int(rng.integers(10, 40)), line + 10), words, fill=int(rng.integers(0, 60)), font=font)
        yield page


def screenshots(rng: np.random.Generator) -> Iterator[Image.Image]:
    font = ImageFont.load_default(size=14)
    for _ in range(GENERATED_PER_CATEGORY):
        shot = Image.new("RGB", (800, 600), tuple(int(v) for v in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(shot)
        draw.rectangle((0, 0, 800, 40), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
        for _ in range(int(rng.integers(4, 12))):
            x, y = int(rng.integers(0, 700)), int(rng.integers(50, 550))
            w, h = int(rng.integers(60, 300)), int(rng.integers(20, 200))
            draw.rectangle((x, y, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)), outline=0)
            draw.text((x + 5, y + 5), f"Button {rng.integers(100)}", fill=0, font=font)
        yield shot


def drawings(rng: np.random.Generator) -> Iterator[Image.Image]:
    for _ in range(GENERATED_PER_CATEGORY):
        canvas = Image.new("L", (512, 512), 255 if rng.random() < 0.7 else 0)
        draw = ImageDraw.Draw(canvas)
        ink = 0 if canvas.getpixel((0, 0)) == 255 else 255
        for _ in range(int(rng.integers(3, 20))):
            box = sorted(rng.integers(0, 512, 2)), sorted(rng.integers(0, 512, 2))
            xy = (int(box[0][0]), int(box[1][0]), int(box[0][1]), int(box[1][1]))
            shape = int(rng.integers(3))
            if shape == 0:
                draw.ellipse(xy, outline=ink, width=int(rng.integers(1, 6)))
            elif shape == 1:
                draw.rectangle(xy, outline=ink, width=int(rng.integers(1, 6)))
            else:
                draw.line(xy, fill=ink, width=int(rng.integers(1, 6)))
        yield canvas


def noise(rng: np.random.Generator) -> Iterator[Image.Image]:
    for i in range(GENERATED_PER_CATEGORY):
        field = rng.random((64, 64)) if i % 2 else rng.normal(128, 40, (256, 256)).clip(0, 255) / 255
        yield Image.fromarray((field * 255).astype(np.uint8)).resize((400, 400), Image.Resampling.BICUBIC)


def flat(rng: np.random.Generator) -> Iterator[Image.Image]:
    for value in np.linspace(0, 255, 16):
        yield Image.new("L", (400, 400), int(value))


GENERATORS: Final[dict[str, Callable[[np.random.Generator], Iterator[Image.Image]]]] = {
    "photographs": lambda rng: skimage_images(PHOTOGRAPHS, rng),
    "documents": lambda rng: skimage_images(DOCUMENTS, rng),
    "text": text_pages,
    "screenshots": screenshots,
    "drawings": drawings,
    "noise": noise,
    "flat": flat,
}


def held_out_negatives(xrays: Uint8Images, ood: Path | None, preset: Preset, seed: int = 0) -> dict[str, Uint8Images]:
    """Every category for ``xrays`` (held-out, preprocessed ``(N, S, S)`` chest X-rays)."""
    categories: dict[str, Uint8Images] = {}
    for kind in ("lateral", "ct"):
        if ood is not None and (ood / kind).is_dir():
            paths = sorted((ood / kind).glob("*"))
            categories[kind] = np.stack([prepare(p.read_bytes(), preset) for p in paths])
    categories["inverted"] = 255 - xrays
    for k in (1, 2, 3):
        categories[f"rotated{90 * k}"] = np.ascontiguousarray(np.rot90(xrays, k, axes=(1, 2)))
    for name, generate in GENERATORS.items():
        categories[name] = _decoded(generate(np.random.default_rng(seed)), preset)
    return categories
