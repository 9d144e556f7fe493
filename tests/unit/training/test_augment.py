"""Batched training augmentation, source-balanced sampling and the source adversary."""

from __future__ import annotations

import pytest
import torch

from training.adversary import SourceAdversary
from training.augment import augment
from training.data import Record
from training.dataset import epoch_order, source_balanced_weights


def _batch(n: int = 8, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("level", ["basic", "strong"])
def test_augmentation_keeps_shape_and_range_and_changes_every_image(level: str) -> None:
    x = _batch()
    out = augment(x, level, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert float(out.min()) >= 0.0
    assert float(out.max()) <= 1.0
    assert all(not torch.allclose(a, b) for a, b in zip(out, x, strict=True))


def test_augmentation_is_reproducible_from_its_generator() -> None:
    x = _batch()
    first = augment(x, "strong", torch.Generator().manual_seed(3))
    assert torch.equal(first, augment(x, "strong", torch.Generator().manual_seed(3)))


def test_no_augmentation_is_the_identity() -> None:
    x = _batch()
    assert torch.equal(augment(x, "none", torch.Generator()), x)


def _records(cells: dict[tuple[str, str], int]) -> list[Record]:
    return [Record(f"{s}-{i}", label, s, f"{s}-{i}") for (label, s), n in cells.items() for i in range(n)]


def test_source_balanced_sampling_gives_each_label_and_each_source_within_it_the_same_share() -> None:
    records = _records({("covid", "a"): 300, ("covid", "b"): 60, ("no_findings", "c"): 900, ("no_findings", "d"): 100})
    drawn = epoch_order(records, "source", torch.Generator().manual_seed(0), source_balanced_weights(records))
    share = {s: sum(records[i].source == s for i in drawn.tolist()) / len(drawn) for s in "abcd"}
    for source in "abcd":
        assert share[source] == pytest.approx(0.25, abs=0.03)


def test_a_tiny_cell_is_not_drawn_as_if_it_were_a_whole_source() -> None:
    records = _records({("covid", "a"): 300, ("no_findings", "b"): 300, ("no_findings", "a"): 5})
    weights = source_balanced_weights(records)
    tiny = sum(float(w) for r, w in zip(records, weights, strict=True) if (r.label, r.source) == ("no_findings", "a"))
    assert tiny < 0.25 * float(weights.sum()) / 2


def test_class_balance_visits_every_image_once() -> None:
    records = _records({("covid", "a"): 7, ("no_findings", "b"): 9})
    assert sorted(epoch_order(records, "class", torch.Generator()).tolist()) == list(range(16))


def test_the_adversary_reverses_the_gradient_that_reaches_the_features() -> None:
    pooled = torch.randn(4, 6, requires_grad=True)
    adversary = SourceAdversary(6, 3)
    loss = torch.nn.functional.cross_entropy(adversary(pooled, 0.5), torch.tensor([0, 1, 2, 0]))
    (toward_features,) = torch.autograd.grad(loss, pooled, retain_graph=True)
    plain = torch.nn.functional.cross_entropy(adversary.head(pooled), torch.tensor([0, 1, 2, 0]))
    (direct,) = torch.autograd.grad(plain, pooled)
    assert torch.allclose(toward_features, -0.5 * direct)
