"""Training the lung-field network (training.lungs) and the served gate table (training.gate_table)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from model.core.lung_fields import FEATURES, LUNG_SIZE
from tests import images
from tests.unit.model.test_lung_fields import two_lungs
from training.gate_table import format_table, variants
from training.lungs import _affine_pair, augment_pair, dice_iou, fit_rule


def test_image_and_mask_get_the_same_geometry() -> None:
    mask = torch.from_numpy(two_lungs())
    pair = _affine_pair(torch.stack([mask, mask])[None].repeat(4, 1, 1, 1), torch.Generator().manual_seed(0))
    torch.testing.assert_close(pair[:, 0], pair[:, 1])
    assert not torch.equal(pair[0, 0], mask)  # it did move


def test_a_turned_training_image_is_labelled_with_its_turn() -> None:
    mask = torch.from_numpy(two_lungs())
    image = (mask * 255).to(torch.uint8)
    x, y, turns = augment_pair(
        image[None].repeat(64, 1, 1), mask[None].repeat(64, 1, 1), torch.Generator().manual_seed(1)
    )
    assert x.shape == y.shape == (64, 1, LUNG_SIZE, LUNG_SIZE)
    assert set(turns.tolist()) == {0, 1, 2, 3}
    # Two upright lungs are taller than wide; turned a quarter, wider than tall.
    for k in (1, 3):
        chosen = y[turns == k][:, 0] > 0.5
        rows, columns = chosen.any(dim=2).sum(dim=1).float(), chosen.any(dim=1).sum(dim=1).float()
        assert bool((rows < columns).float().mean() > 0.8)


def test_dice_and_iou_of_equal_and_of_disjoint_masks() -> None:
    a = two_lungs() > 0.5
    assert dice_iou(a, a) == (1.0, 1.0)
    assert dice_iou(a, ~a) == (0.0, 0.0)


def test_the_rule_accepts_every_xray_it_was_fitted_on_and_a_little_beyond() -> None:
    rng = np.random.default_rng(0)
    measured = [{name: float(v) for name, v in zip(FEATURES, row, strict=True)} for row in rng.random((1000, 9))]
    rule = fit_rule(measured, margin=0.25)
    assert not any(rule.failed(m) for m in measured)
    assert rule.bounds["balance"][1] is None  # a pair is never too balanced
    low = min(m["area"] for m in measured)
    assert not rule.failed({**measured[0], "area": low - 0.05})  # within a quarter IQR (~0.125)
    assert rule.failed({**measured[0], "area": low - 0.2})


def test_the_turned_and_inverted_copies_are_uploads_of_the_same_image() -> None:
    copies = variants([images.xray_png(300)])
    assert set(copies) == {"inverted", "rotated90", "rotated180", "rotated270"}
    original = np.asarray(Image.open(io.BytesIO(images.xray_png(300))))
    turned = np.asarray(Image.open(io.BytesIO(copies["rotated90"][0])))
    np.testing.assert_array_equal(turned, np.rot90(original))
    inverted = np.asarray(Image.open(io.BytesIO(copies["inverted"][0])))
    np.testing.assert_array_equal(inverted, 255 - original)


def test_the_table_gives_each_reason_its_share() -> None:
    table = {"photographs": {"n": 4, "refused": 0.75, "outcomes": {"accepted": 1, "no_lung_fields": 3}}}
    assert "| photographs | 4 | 75.0% | 0.0% | 0.0% | 75.0% |" in format_table(table)
