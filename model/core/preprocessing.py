"""The model's input: a decoded image to the network input of a preset, shared by training and serving.

Only Pillow and NumPy are imported here, so the Lambdas (no torch) validate images with exactly the code
the model is served with. Decoding is ``model.core.decoding``; the presets, ``model.core.presets``. The
image stays single-channel throughout: the network itself expands gray to three channels and applies
the preset's normalisation (see ``model.builder.architectures``), so no runtime can normalise
differently from training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from model.core import errors, lung_fields
from model.core.decoding import load_gray
from model.core.presets import Preset


def decode_gray(data: bytes, size: int) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG/DICOM bytes into a ``size`` x ``size`` uint8 gray array, without cropping or
    equalising (what a v1 preset does, at any size).

    Raises a subclass of ``model.core.errors.InvalidImageError`` for anything that is not a usable image.
    """
    return _network_input(load_gray(data, size), size, crop=0.0, equalize=False)


def prepare(data: bytes, preset: Preset, lungs: lung_fields.LungFinder | None = None) -> npt.NDArray[np.uint8]:
    """Decode image bytes into the network input of ``preset``: a ``size`` x ``size`` uint8 gray array.

    The one function training, evaluation and every served runtime put an image through. A lung-centred
    preset (v3) needs ``lungs``, the lung-field network. Raises a subclass of
    ``model.core.errors.InvalidImageError`` for anything that is not a usable image, and, for a v3 preset,
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


def to_batch(arrays: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    """Stack gray uint8 images into the network input: float32 ``(N, 1, H, W)`` in [0, 1]."""
    batch = np.stack(arrays).astype(np.float32)
    batch *= np.float32(1.0 / 255.0)
    return batch[:, None, :, :]
