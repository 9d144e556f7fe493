from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.core import errors
from model.core.decoding import png_significant_bits, sniff_format
from model.core.downsize import downsize_png
from model.core.preprocessing import decode_gray, prepare, to_batch
from model.core.presets import PRESETS, Preset, get_preset
from tests import images


def test_presets_are_versioned_and_named() -> None:
    assert set(PRESETS) == {
        *(f"xray-gray-{size}-v{version}" for size in (224, 299) for version in (1, 2, 3)),
        "xray-lungs-224-v3",
        "xray-lungs-299-v3",
    }
    assert get_preset("xray-gray-299-v1").size == 299


@pytest.mark.parametrize(("data", "fmt"), [(images.png(), "PNG"), (images.jpeg(), "JPEG")], ids=["png", "jpeg"])
def test_sniff_format_reads_magic_bytes(data: bytes, fmt: str) -> None:
    assert sniff_format(data) == fmt


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", errors.EmptyImageError),
        (b"\x00\x01random-bytes" * 10, errors.NotAnImageError),
        (images.PDF, errors.NotAnImageError),
        (images.HTML, errors.NotAnImageError),
        (images.truncated(images.png(256, seed=3), 0.4), errors.TruncatedImageError),
        (images.truncated(images.jpeg(256, seed=3), 0.4), errors.TruncatedImageError),
        (images.huge_declared_png(), errors.DecompressionBombError),
        (images.png(1), errors.ImageTooSmallError),
    ],
    ids=["empty", "random", "pdf", "html", "truncated-png", "truncated-jpeg", "bomb", "1x1"],
)
def test_bad_inputs_raise_typed_errors(data: bytes, error: type[errors.InvalidImageError]) -> None:
    with pytest.raises(error):
        decode_gray(data, 224)


def test_too_many_bytes_is_rejected_before_decoding() -> None:
    with pytest.raises(errors.ImageTooLargeError):
        decode_gray(b"\x89PNG\r\n\x1a\n" + b"\0" * 6_291_456, 224)


def test_bomb_is_rejected_from_header_only() -> None:
    data = images.huge_declared_png()
    assert len(data) < 1000
    with pytest.raises(errors.DecompressionBombError):
        decode_gray(data, 224)


@pytest.mark.parametrize(
    "data",
    [
        images.png(),
        images.png(mode="RGB"),
        images.jpeg(),
        images.jpeg(mode="RGB"),
        images.palette_png(),
        images.rgba_png(),
        images.cmyk_jpeg(),
        images.png16(),
    ],
    ids=["gray-png", "rgb-png", "gray-jpeg", "rgb-jpeg", "palette", "rgba", "cmyk", "16-bit"],
)
def test_every_mode_decodes_to_the_same_gray_image(data: bytes) -> None:
    reference = decode_gray(images.png(), 64).astype(int)
    decoded = decode_gray(data, 64)
    assert decoded.shape == (64, 64)
    assert decoded.dtype == np.uint8
    # JPEG and colour round trips cost a few grey levels, never a different image.
    assert np.abs(decoded.astype(int) - reference).mean() < 6


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    decoded = decode_gray(images.png16(), 64)
    assert decoded.max() < 255 or decoded.mean() < 200
    assert 80 < decoded.mean() < 175


@pytest.mark.parametrize(
    "data",
    [
        images.png12_in_16(),
        images.png12_in_16(significant_bits=12),
        images.png12_in_16(significant_bits=12, scaled=True),
    ],
    ids=["12-bit raw, no sBIT", "12-bit raw, sBIT 12", "12-bit scaled to 16, sBIT 12"],
)
def test_a_12_bit_image_in_16_bits_is_scaled_by_its_bits_not_by_65535(data: bytes) -> None:
    reference = decode_gray(images.png(96), 64).astype(int)
    for decoded in (decode_gray(data, 64), decode_gray(downsize_png(data), 64)):
        assert abs(decoded.mean() - reference.mean()) < 3  # it was 7.9 of 255: nearly black


def test_the_png_significant_bits_are_read() -> None:
    assert png_significant_bits(images.png12_in_16(significant_bits=12)) == 12
    assert png_significant_bits(images.png12_in_16()) is None
    assert png_significant_bits(images.jpeg(64)) is None


def test_exif_orientation_is_applied() -> None:
    decoded = decode_gray(images.exif_rotated_jpeg(), 64)
    # Landscape with white left half, rotated 90° clockwise for display: white ends on top.
    assert decoded[:16].mean() > 200
    assert decoded[-16:].mean() < 50


def test_jpeg_draft_decodes_large_images_at_reduced_scale() -> None:
    big = images.encode(Image.fromarray(images.gradient(2000), "L"), "JPEG", quality=90)
    assert decode_gray(big, 224).shape == (224, 224)


def test_to_batch_is_single_channel_unit_range() -> None:
    batch = to_batch([np.full((8, 8), 255, np.uint8), np.zeros((8, 8), np.uint8)])
    assert batch.shape == (2, 1, 8, 8)
    assert batch.dtype == np.float32
    assert batch.max() == 1.0
    assert batch.min() == 0.0


def test_preset_v1_is_the_plain_decode() -> None:
    data = images.png(96, seed=5)
    assert np.array_equal(prepare(data, get_preset("xray-gray-224-v1")), decode_gray(data, 224))


def test_preset_v2_cuts_the_borders_before_resizing() -> None:
    # A white frame 5 % wide round a dark image: v2's 8 % crop leaves none of it.
    framed = np.full((200, 200), 255, np.uint8)
    framed[10:190, 10:190] = np.random.default_rng(0).integers(0, 100, (180, 180), dtype=np.uint8)
    data = images.encode(Image.fromarray(framed, "L"), "PNG")
    v1 = Preset("plain", 1, 64, (0.0,) * 3, (1.0,) * 3)
    cropped = Preset("cropped", 1, 64, (0.0,) * 3, (1.0,) * 3, crop=0.08)
    assert prepare(data, v1)[0].min() == 255
    assert prepare(data, cropped).max() < 200


def test_preset_v2_equalises_so_that_exposure_does_not_matter() -> None:
    base = np.asarray(Image.open(io.BytesIO(images.png(128, seed=2))), dtype=np.float64)
    dark, bright = (
        images.encode(Image.fromarray((base * f + o).astype(np.uint8), "L"), "PNG") for f, o in ((0.4, 0), (0.4, 150))
    )
    preset = get_preset("xray-gray-224-v2")
    assert np.abs(prepare(dark, preset).astype(int) - prepare(bright, preset).astype(int)).max() <= 2
    assert prepare(dark, preset).max() >= 250  # stretched over the whole range
