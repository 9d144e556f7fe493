"""Image decoding and the named, versioned preprocessing presets shared by training and serving.

Only Pillow and NumPy are imported here, so the Lambdas (no torch) validate images with exactly
the code the model is served with.

Decoding is defensive: the format is taken from the magic bytes, never from a file name or a
content type; the pixel count is checked from the header before any pixel is decoded; truncated
files are errors, not grey padding; the markers that set a decoder's time (JPEG scans and segments,
PNG chunks: ``model.codestreams``) are counted before the decoder runs. The image stays
single-channel throughout: the network itself expands gray to three channels and applies the
preset's normalisation (see ``model.architectures``), so no runtime can normalise differently from
training.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from model import codestreams, contract, dicom, errors, lung_fields

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

_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


@dataclass(frozen=True)
class Preset:
    """How raw bytes become the network input. Changing any field means a new version."""

    name: str
    version: int
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Share of the width and of the height cut from each side before resizing: film borders, side
    # markers, burnt-in text and collimation edges tell a hospital apart, not a disease.
    crop: float = 0.0
    # Per-image histogram equalisation after resizing, so one site's film, exposure and
    # post-processing (some sources ship CLAHE-enhanced images) look like another's.
    equalize: bool = False
    # v3: the classifier sees the lung fields ``model.lung_fields`` found, not the film around them.
    # "crop": their bounding box grown by ``lung_margin`` of its size on each side; "mask": the same box
    # with everything outside the (slightly grown) lung fields set to black.
    lungs: str = ""
    lung_margin: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def decode_size(self) -> int:
        """The least side the decoder must keep for this preset (JPEGs are decoded at a reduced scale):
        the lung box can be half the image."""
        if self.lungs:
            return 2 * self.size
        return math.ceil(self.size / (1.0 - 2.0 * self.crop))


PRESETS: Final[dict[str, Preset]] = {
    p.id: p
    for p in (
        Preset("xray-gray-224", 1, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        # InceptionV3's ImageNet weights expect inputs scaled to [-1, 1].
        Preset("xray-gray-299", 1, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        # v2: against the source shortcuts measured on cxr-multisource (see training.loso).
        Preset("xray-gray-224", 2, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), crop=0.08, equalize=True),
        Preset("xray-gray-299", 2, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop=0.08, equalize=True),
        # v3: the lungs, against the film around them (issue 23: the source is still in view in v2).
        *(
            Preset(name, 3, size, mean, std, equalize=True, lungs=lungs, lung_margin=0.06)
            for size, mean, std in ((224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), (299, (0.5,) * 3, (0.5,) * 3))
            for name, lungs in ((f"xray-gray-{size}", "crop"), (f"xray-lungs-{size}", "mask"))
        ),
    )
}


def get_preset(preset_id: str) -> Preset:
    try:
        return PRESETS[preset_id]
    except KeyError as exc:
        raise ValueError(f"unknown preprocessing preset {preset_id!r}; known: {sorted(PRESETS)}") from exc


def sniff_format(data: bytes) -> str:
    """Return ``"PNG"``, ``"JPEG"`` or ``"DICOM"`` from the magic bytes, or raise an ``InvalidImageError``."""
    if not data:
        raise errors.EmptyImageError("empty body: no image bytes")
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if dicom.is_dicom(data):
        return "DICOM"
    raise errors.NotAnImageError("not a PNG, JPEG or DICOM image (checked by content, not by name)")


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise errors.ImageTooLargeError(f"image is {len(data)} bytes; the limit is {max_bytes}")


def _dicom_gray(data: bytes, max_bytes: int) -> Image.Image:
    _check_bytes(data, max_bytes)
    return dicom.dicom_to_gray(data, MAX_PIXELS, MIN_SIDE)[0]


def decode_cost(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> int:
    """What decoding ``data`` may allocate at its peak, known from its header alone (for a byte budget)."""
    if sniff_format(data) == "DICOM":
        _check_bytes(data, max_bytes)
        return dicom.decode_cost(data)
    image = open_checked(data, max_bytes)
    cost = 2 * decoded_bytes(image)
    if image.format == "JPEG":
        frame = codestreams.jpeg_frame(data)
        if frame.progressive:  # libjpeg keeps every coefficient of every component until the last scan
            cost += frame.width * frame.height * frame.components * 2
    return cost


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


def open_checked(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> Image.Image:
    """Open ``data`` lazily and check its size from the header, before any pixel is decoded."""
    _check_bytes(data, max_bytes)
    fmt = sniff_format(data)
    if fmt == "DICOM":
        raise errors.UnsupportedImageTypeError("a DICOM file has no Pillow image; decode it with model.dicom")
    if fmt == "JPEG":
        codestreams.jpeg_frame(data)
    else:
        codestreams.png_chunks(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.DecompressionBombError("image declares too many pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise errors.TruncatedImageError(f"{fmt} header is corrupt or truncated") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise errors.DecompressionBombError(f"image declares {width}x{height} pixels; the limit is {MAX_PIXELS} pixels")
    if min(width, height) < MIN_SIDE:
        raise errors.ImageTooSmallError(f"image is {width}x{height}; each side must be >= {MIN_SIDE} px")
    if image.format != "JPEG" and decoded_bytes(image) > MAX_DECODED_BYTES:
        # JPEGs are decoded at a reduced scale (draft), so only their pixel count is capped.
        raise errors.DecompressionBombError(
            f"image would decode to {decoded_bytes(image)} bytes ({image.mode}); the limit is {MAX_DECODED_BYTES}"
        )
    return image


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


def _wide_to_gray(image: Image.Image, significant_bits: int | None) -> Image.Image:
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


def _to_gray(image: Image.Image, significant_bits: int | None = None) -> Image.Image:
    """Convert any decoded mode to 8-bit gray without clipping high bit depths."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in _SIXTEEN_BIT_MODES:
        return _wide_to_gray(image, significant_bits)
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


def load_gray(data: bytes, min_size: int) -> Image.Image:
    """Validate and decode to an upright 8-bit gray image, at least ``min_size`` px on each side
    where the source is (JPEGs are decoded at a reduced scale when that still holds)."""
    if sniff_format(data) == "DICOM":
        return _dicom_gray(data, MAX_IMAGE_BYTES)
    image = open_checked(data)
    if image.format == "JPEG":
        # DCT-domain downscaling and gray output straight from the decoder: ~5x faster on large JPEGs.
        image.draft("L", (min_size, min_size))
    try:
        image.load()
        return _to_gray(ImageOps.exif_transpose(image), png_significant_bits(data))
    except (OSError, SyntaxError, ValueError) as exc:
        raise errors.TruncatedImageError(f"{image.format} data is truncated or corrupt") from exc
    except Image.DecompressionBombError as exc:
        raise errors.DecompressionBombError("image declares too many pixels") from exc


def decode_gray(data: bytes, size: int) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG/DICOM bytes into a ``size`` x ``size`` uint8 gray array, without cropping or
    equalising (what a v1 preset does, at any size).

    Raises a subclass of ``model.errors.InvalidImageError`` for anything that is not a usable image.
    """
    return _network_input(load_gray(data, size), size, crop=0.0, equalize=False)


def prepare(data: bytes, preset: Preset, lungs: lung_fields.LungFinder | None = None) -> npt.NDArray[np.uint8]:
    """Decode image bytes into the network input of ``preset``: a ``size`` x ``size`` uint8 gray array.

    The one function training, evaluation and every served runtime put an image through. A lung-centred
    preset (v3) needs ``lungs``, the lung-field network. Raises a subclass of
    ``model.errors.InvalidImageError`` for anything that is not a usable image, and, for a v3 preset,
    the gate's ``NotUprightError`` or ``NoLungFieldsError`` where the lungs are turned or not found:
    a lung field is never guessed.
    """
    gray = load_gray(data, preset.decode_size)
    if not preset.lungs:
        return prepare_gray(gray, preset)
    if lungs is None:
        raise ValueError(f"preset {preset.id} crops to the lung fields: pass the lung-field network (lungs=)")
    found = lungs.find([gray])[0]
    check_lungs(found)
    return prepare_gray(gray, preset, found)


def gated_prepare(data: bytes, preset: Preset, lungs: lung_fields.LungFinder | None) -> npt.NDArray[np.uint8]:
    """``prepare`` as a package with a lung-field network serves it: with ``lungs``, the lung-field gate
    first for every preset, not only the lung-centred ones (raising its ``NoLungFieldsError`` or
    ``NotUprightError``)."""
    gray = load_gray(data, preset.decode_size)
    if lungs is None:
        return prepare_gray(gray, preset)
    found = lungs.find([gray])[0]
    check_lungs(found)
    return prepare_gray(gray, preset, found if preset.lungs else None)


def check_lungs(found: lung_fields.LungField) -> None:
    """The gate's anatomy rule: raise where ``found`` is no plausible pair of lungs, or turned."""
    if not found.plausible:
        raise errors.NoLungFieldsError(
            "no pair of lungs was found in this image: the model only answers for frontal chest radiographs",
            found.failed,
        )
    if not found.upright:
        raise errors.NotUprightError(f"this looks like a chest X-ray turned by {found.turn} degrees: upload it upright")


def prepare_gray(
    gray: Image.Image, preset: Preset, found: lung_fields.LungField | None = None
) -> npt.NDArray[np.uint8]:
    """``prepare`` after decoding: ``gray`` (``load_gray(data, preset.decode_size)``) and, for a v3
    preset, its plausible, upright lung field ``found``."""
    if preset.lungs:
        if found is None:
            raise ValueError(f"preset {preset.id} needs the image's lung field")
        return _lung_input(gray, preset, found)
    return _network_input(gray, preset.size, preset.crop, preset.equalize)


def lung_box(gray: Image.Image, preset: Preset, found: lung_fields.LungField) -> tuple[int, int, int, int]:
    """The pixel box of ``gray`` that a v3 preset's input shows."""
    return lung_fields.crop_box(found, gray.width, gray.height, preset.lung_margin)


def seen_box(
    gray: Image.Image, preset: Preset, found: lung_fields.LungField | None = None
) -> tuple[float, float, float, float]:
    """The part of ``gray`` the network input of ``preset`` shows, as shares of its sides (left, top,
    right, bottom): the frame of the class activation maps."""
    if preset.lungs:
        if found is None:
            raise ValueError(f"preset {preset.id} needs the image's lung field")
        x0, y0, x1, y1 = lung_box(gray, preset, found)
        return x0 / gray.width, y0 / gray.height, x1 / gray.width, y1 / gray.height
    return preset.crop, preset.crop, 1.0 - preset.crop, 1.0 - preset.crop


def _lung_input(gray: Image.Image, preset: Preset, found: lung_fields.LungField) -> npt.NDArray[np.uint8]:
    box = lung_box(gray, preset, found)
    resized = gray.crop(box).resize((preset.size, preset.size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if preset.equalize:
        resized = ImageOps.equalize(resized)
    array = np.asarray(resized, dtype=np.uint8)
    if preset.lungs == "mask":
        inside = lung_fields.outside_mask(found, box, gray.width, gray.height, preset.size)
        array = np.where(inside > 0, array, 0).astype(np.uint8)
    return array


def _network_input(gray: Image.Image, size: int, crop: float, equalize: bool) -> npt.NDArray[np.uint8]:
    if crop:
        width, height = gray.size
        dx, dy = round(width * crop), round(height * crop)
        gray = gray.crop((dx, dy, width - dx, height - dy))
    resized = gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if equalize:
        resized = ImageOps.equalize(resized)
    return np.asarray(resized, dtype=np.uint8)


_ROWS: Final = 256


def _palette_to_gray(image: Image.Image) -> Image.Image:
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


def _reduced_gray(image: Image.Image, max_side: int, significant_bits: int | None = None) -> Image.Image:
    """Decode and shrink to gray within the memory of the decoded pixels themselves.

    Every mode is reduced by whole factors (a box average, Pillow's ``reduce``) in its own mode right
    after decoding, before the conversion to gray, so no full-size RGBA or 32-bit copy is made.
    """
    factor = max(1, max(image.size) // (2 * max_side))
    if image.mode in _SIXTEEN_BIT_MODES:
        image = _wide_to_gray(image, significant_bits)
    elif image.mode == "P":
        image = _palette_to_gray(image)
    if factor > 1:
        image = _reduce_in_bands(image, factor)
    return _to_gray(image)


def _reduce_in_bands(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``, the same pixels, without the full-size copy ``reduce`` makes first."""
    width, height = image.size
    out = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    step = factor * 64
    for top in range(0, height, step):
        out.paste(image.crop((0, top, width, min(height, top + step))).reduce(factor), (0, top // factor))
    return out


def _upright(image: Image.Image, orientation: int | None) -> Image.Image:
    """What ``ImageOps.exif_transpose`` does, applied to the small gray image instead of the original."""
    method = _EXIF_TRANSPOSE.get(orientation or 1)
    return image if method is None else image.transpose(method)


def downsize_png(data: bytes, max_side: int = 512, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """Validate an upload and re-encode it as gray PNG with its longest side at most ``max_side``.

    What the Lambdas send to the endpoint: a few hundred KB instead of a multi-MB original, with every
    bad input rejected before the endpoint is called. Larger than any preset, so no detail the model
    uses is lost. Peak memory stays near the decoded size (``MAX_DECODED_BYTES`` at most).
    """
    if sniff_format(data) == "DICOM":
        return _encode_downsized(_dicom_gray(data, max_bytes), max_side)
    image = open_checked(data, max_bytes)
    if image.format == "JPEG":
        image.draft("L", (max_side, max_side))
    try:
        orientation = image.getexif().get(0x0112)
        image.load()
        gray = _upright(_reduced_gray(image, max_side, png_significant_bits(data)), orientation)
    except (OSError, SyntaxError, ValueError) as exc:
        raise errors.TruncatedImageError(f"{image.format} data is truncated or corrupt") from exc
    except Image.DecompressionBombError as exc:
        raise errors.DecompressionBombError("image declares too many pixels") from exc
    return _encode_downsized(gray, max_side)


def _encode_downsized(gray: Image.Image, max_side: int) -> bytes:
    if max(gray.size) > max_side:
        gray.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=3.0)
    buffer = io.BytesIO()
    gray.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def to_batch(arrays: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    """Stack gray uint8 images into the network input: float32 ``(N, 1, H, W)`` in [0, 1]."""
    batch = np.stack(arrays).astype(np.float32)
    batch *= np.float32(1.0 / 255.0)
    return batch[:, None, :, :]
