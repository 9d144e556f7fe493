"""The lung fields' reading (model.core.lung_fields): shape measures, the rule, turns, the crop, the gate."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.core import errors
from model.core.lung_fields import LUNG_SIZE, LungFinder, LungRule, activation_inside, analyse, crop_box, features
from model.core.preprocessing import prepare
from model.core.presets import get_preset

S = LUNG_SIZE


def two_lungs(size: int = S) -> np.ndarray:
    """A mask of two upright lung-shaped ellipses either side of a mediastinum, 1 inside."""
    y, x = np.mgrid[0:size, 0:size] / size
    left = ((x - 0.32) / 0.14) ** 2 + ((y - 0.5) / 0.3) ** 2 <= 1
    right = ((x - 0.68) / 0.13) ** 2 + ((y - 0.5) / 0.28) ** 2 <= 1
    return (left | right).astype(np.float32)


def logits(mask: np.ndarray) -> np.ndarray:
    return np.where(mask > 0.5, 8.0, -8.0).astype(np.float32)


def turn_logits(k: int) -> np.ndarray:
    out = np.full(4, -5.0, np.float32)
    out[k] = 5.0
    return out


PAIR_RULE = LungRule({"area": (0.1, 0.6), "balance": (0.5, None), "gap": (None, 0.3), "centre_x": (0.35, 0.65)})


def test_two_lungs_measure_as_a_balanced_separated_pair() -> None:
    measured = features(two_lungs())
    assert 0.15 < measured["area"] < 0.3
    assert measured["balance"] > 0.8
    assert measured["gap"] < 0.05  # the mediastinum between them
    assert measured["centre_x"] == pytest.approx(0.5, abs=0.02)


def test_one_lung_alone_is_no_pair() -> None:
    mask = two_lungs()
    mask[:, S // 2 :] = 0
    measured = features(mask)
    assert measured["gap"] > 0.5  # no mediastinum inside one lung
    assert measured["width"] < 0.35
    assert PAIR_RULE.failed(measured)


def test_an_empty_mask_fails_every_lower_bound() -> None:
    assert set(PAIR_RULE.failed(features(np.zeros((S, S), np.float32)))) >= {"area", "balance", "centre_x"}


def test_one_blob_without_a_mediastinum_has_no_gap() -> None:
    y, x = np.mgrid[0:S, 0:S] / S
    blob = (((x - 0.5) / 0.35) ** 2 + ((y - 0.5) / 0.3) ** 2 <= 1).astype(np.float32)
    assert "gap" in PAIR_RULE.failed(features(blob))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_turned_mask_is_measured_upright(k: int) -> None:
    upright = analyse(logits(two_lungs()), turn_logits(0), PAIR_RULE).features
    found = analyse(logits(np.rot90(two_lungs(), k)), turn_logits(k), PAIR_RULE)
    assert found.turn == 90 * k
    assert found.features == pytest.approx(upright)
    assert found.plausible


def test_the_rule_round_trips_through_metadata() -> None:
    assert LungRule.from_dict(PAIR_RULE.to_dict()) == PAIR_RULE


def test_a_rule_with_an_unknown_measure_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lung-field measures"):
        LungRule.from_dict({"colour": [0.0, 1.0]})


def test_the_crop_is_the_lung_box_with_its_margin_inside_the_image() -> None:
    found = analyse(logits(two_lungs()), turn_logits(0), None)
    x0, y0, x1, y1 = crop_box(found, 1000, 800, 0.0)
    # The ellipses span 0.18 to 0.81 of the width and 0.2 to 0.8 of the height.
    assert 175 <= x0 <= 195
    assert 155 <= y0 <= 175
    assert 800 <= x1 <= 820
    assert 625 <= y1 <= 650
    wide = crop_box(found, 1000, 800, 1.0)
    assert wide == (0, 0, 1000, 800)


def test_activation_inside_the_lungs_is_the_share_of_positive_mass_there() -> None:
    lungs = two_lungs() > 0.5
    assert activation_inside(np.where(lungs, 1.0, 0.0).astype(np.float32), lungs) == pytest.approx(1.0, abs=0.02)
    assert activation_inside(np.where(lungs, 0.0, 1.0).astype(np.float32), lungs) < 0.05


class FakeLungs:
    """A lung-field network that always answers ``mask`` turned by ``k`` quarter turns."""

    def __init__(self, mask: np.ndarray, k: int = 0) -> None:
        self.mask, self.k = mask, k
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        n = len(batch)
        return np.stack([logits(self.mask)[None]] * n), np.stack([turn_logits(self.k)] * n)


def png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_preset_v3_shows_only_the_lung_box() -> None:
    image = np.zeros((400, 400), np.uint8)
    image[:, 200:] = 255  # the right half white: the box takes in both halves around the middle
    found = prepare(png(image), get_preset("xray-gray-224-v3"), LungFinder(FakeLungs(two_lungs()), PAIR_RULE))
    assert found.shape == (224, 224)
    assert found[:, :100].max() < 50
    assert found[:, 130:].min() > 200


def test_the_masked_preset_blacks_out_what_is_not_lung() -> None:
    image = np.full((400, 400), 200, np.uint8)
    prepared = prepare(png(image), get_preset("xray-lungs-224-v3"), LungFinder(FakeLungs(two_lungs()), PAIR_RULE))
    assert prepared[112, 112] == 0  # the mediastinum between the two fields
    assert prepared[112, 40] > 0  # inside the right lung (the image's left)


def test_a_v3_preset_without_the_lung_network_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="lung-field network"):
        prepare(png(np.zeros((64, 64), np.uint8)), get_preset("xray-gray-224-v3"))


def test_no_plausible_lungs_is_refused_not_cropped() -> None:
    finder = LungFinder(FakeLungs(np.zeros((S, S), np.float32)), PAIR_RULE)
    with pytest.raises(errors.NoLungFieldsError) as caught:
        prepare(png(np.zeros((64, 64), np.uint8)), get_preset("xray-gray-224-v3"), finder)
    assert caught.value.reason == "no_lung_fields"
    assert "area" in caught.value.failed


def test_lungs_found_turned_are_refused_as_not_upright() -> None:
    finder = LungFinder(FakeLungs(np.rot90(two_lungs()).copy(), k=1), PAIR_RULE)
    with pytest.raises(errors.NotUprightError):
        prepare(png(np.zeros((64, 64), np.uint8)), get_preset("xray-gray-224-v3"), finder)


def test_the_finder_runs_the_network_once_per_batch() -> None:
    network = FakeLungs(two_lungs())
    found = LungFinder(network, PAIR_RULE).find([Image.new("L", (300, 200))] * 5, batch=32)
    assert len(found) == 5
    assert network.calls == 1
